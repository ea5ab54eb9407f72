// Embedding records: a [points, dims] float matrix, with optional label
// columns, as the files of TensorBoard's projector, laid out as PyTorch's
// add_embedding lays them out: no event, only files under
// <(sub-)run>/<5-digit step>/<encoded tag>/ and a block for the run's
// projector_config.pbtxt.
#ifndef TBLOG_DAEMON_CONVERT_EMBEDDING_H_
#define TBLOG_DAEMON_CONVERT_EMBEDDING_H_

#include "absl/status/status.h"
#include "daemon/convert/fields.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Appends the projector files of `embedding` to `out.files`, in `header`'s
// subrun. The step names a directory, so a negative one is an error.
absl::Status ConvertEmbedding(const v1::Embedding& embedding, const Header& header,
                              const Limits& limits, Converted& out);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_EMBEDDING_H_
