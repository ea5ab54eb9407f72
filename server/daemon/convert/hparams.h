// Hyperparameters: the experiment config, session start and session end of
// TensorBoard's hparams plugin, in TensorBoard's layout or (torch_style) the
// one PyTorch's SummaryWriter.add_hparams writes. They come from an hparams
// record, or from the HParams given when a run opens and closes.
// Hyperparameters are taken in name order (proto maps have none), so the
// output is deterministic; a name with only a domain is in the experiment only.
#ifndef TBLOG_DAEMON_CONVERT_HPARAMS_H_
#define TBLOG_DAEMON_CONVERT_HPARAMS_H_

#include "absl/status/status.h"
#include "daemon/convert/fields.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Whether `hparams` sets any value, domain or metric.
bool HasHParams(const v1::HParams& hparams);

// An hparams record's events, appended to `out` at `header`'s step, wall time
// and subrun: experiment and session start, and with torch_style the session
// end too, as add_hparams writes all three. Empty hparams are an error.
absl::Status ConvertHParamsRecord(const v1::HParams& hparams, const Header& header,
                                  const Limits& limits, Converted& out);

// The experiment and session start written when a run opens (step 0, wall
// time `now`, the run itself), appended to `out`. The caller checks
// HasHParams first.
absl::Status AppendRunStartHParams(const v1::HParams& hparams, double now, const Limits& limits,
                                   Converted& out);

// The session end written when a run closes (step 0, wall time `now`); nothing
// without HasHParams. UNSPECIFIED is written as SUCCESS, an unknown status as
// UNKNOWN. Cannot fail: were the engine to refuse the value, the events are
// empty and a warning says why.
Converted HParamsSessionEnd(v1::SessionStatus status, const v1::HParams& hparams, double now);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_HPARAMS_H_
