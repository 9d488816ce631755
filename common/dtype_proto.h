// The element types of the wire (wxp.v1.DType, proto/swarm_spec.proto) and of common/dtype.h
// in one place, with one meaning on the server and on every client: a value this build does
// not know is an error naming the number, never silently some other type.
#ifndef WXP_COMMON_DTYPE_PROTO_H_
#define WXP_COMMON_DTYPE_PROTO_H_

#include <optional>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "proto/swarm_spec.pb.h"

namespace wxp {

// A tensor's dtype. InvalidArgument naming the value for DTYPE_UNSPECIFIED (a tensor must
// have one) and for values outside the enum.
absl::StatusOr<DType> DTypeFromProto(wxp::v1::DType dtype);
wxp::v1::DType DTypeToProto(DType dtype);

// A transport dtype (SwarmSpec.transport_dtype, GetAssignmentResponse.transport_dtype):
// nullopt for DTYPE_UNSPECIFIED ("each tensor's schema dtype"), else as DTypeFromProto.
absl::StatusOr<std::optional<DType>> TransportDTypeFromProto(wxp::v1::DType dtype);

}  // namespace wxp

#endif  // WXP_COMMON_DTYPE_PROTO_H_
