// What a batch costs the daemon's ByteBudget (byte_budget.h): the bytes it is
// charged when it is received (its message plus an estimate of the buffers
// its conversion needs at its peak), and the bytes it holds once converted
// (its events, what is left of its message). The estimates are upper bounds
// per record kind, from the sizes in the message; they are replaced by the
// actual figure as soon as the batch is converted (ConvertBatch in
// record_converter.h), so an overestimate only delays other requests for the
// time of one conversion.
#ifndef TBLOG_DAEMON_CONVERT_CHARGE_H_
#define TBLOG_DAEMON_CONVERT_CHARGE_H_

#include <cstddef>

#include "daemon/record_converter.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Bytes one record's conversion may hold at its peak beyond its message:
// decoded pixels, the PNG/WAV/TSV it encodes, the summary and event copies.
size_t ConversionEstimate(const v1::Record& record);

// A batch's message as protobuf holds it, with its queue entry.
size_t MessageCharge(const v1::WriteRequest& request);

// A received batch's charge: MessageCharge and its records' conversion
// estimates. `received` is its serialized size (what was read), which
// request.ByteSizeLong() would find again by walking every packed varint of
// a scalar batch.
size_t BatchCharge(const v1::WriteRequest& request, size_t received);

// Heap and object bytes a converted record holds until it is written,
// including the framed copy that writing makes of each large event.
size_t HeldBytes(const Converted& converted);

// Frees a converted record's payload (tensor bytes, pixels, text), keeping
// its tag, step, sub-run and kind, which errors and metrics still name (a
// scalar column keeps its tag_index, one entry per point).
void DropPayload(v1::Record& record);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_CHARGE_H_
