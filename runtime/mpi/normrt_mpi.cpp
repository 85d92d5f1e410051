//===- normrt_mpi.cpp - SyncBatchNorm's allreduce hook on MPI -------------===//
//
// This file implements normrt_mpi.h: normrt's allreduce hook as one
// MPI_Allreduce with MPI_SUM on a communicator duplicated for normrt, with
// MPI_ERRORS_RETURN so that a failed collective becomes a normrt error.
//
//===----------------------------------------------------------------------===//

#include "normrt_mpi.h"

#include <climits>
#include <cstdio>
#include <string>

struct normrt_mpi_group {
  MPI_Comm comm = MPI_COMM_NULL;
};

namespace {

thread_local std::string lastError;

int mpiFailure(const char *what, int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    std::snprintf(text, sizeof text, "MPI error %d", code);
  lastError = std::string(what) + ": " + text;
  return code != 0 ? code : 1;
}

/// The MPI datatype of a normrt dtype that can be summed, or MPI_DATATYPE_NULL.
MPI_Datatype mpiType(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT32:
    return MPI_FLOAT;
  case NORMRT_FLOAT64:
    return MPI_DOUBLE;
  case NORMRT_INT64:
    return MPI_INT64_T;
  default:
    return MPI_DATATYPE_NULL;
  }
}

} // namespace

extern "C" {

normrt_mpi_group *normrt_mpi_group_create(MPI_Comm comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    lastError = "normrt_mpi_group_create: MPI is not initialized (MPI_Init)";
    return nullptr;
  }
  auto *group = new normrt_mpi_group;
  int rc = MPI_Comm_dup(comm, &group->comm);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(group->comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    mpiFailure("normrt_mpi_group_create: MPI_Comm_dup", rc);
    if (group->comm != MPI_COMM_NULL)
      MPI_Comm_free(&group->comm);
    delete group;
    return nullptr;
  }
  return group;
}

void normrt_mpi_group_destroy(normrt_mpi_group *group) {
  if (!group)
    return;
  if (group->comm != MPI_COMM_NULL)
    MPI_Comm_free(&group->comm);
  delete group;
}

MPI_Comm normrt_mpi_group_comm(const normrt_mpi_group *group) {
  return group ? group->comm : MPI_COMM_NULL;
}

int normrt_mpi_allreduce(void *data, int64_t count, int32_t dtype,
                         void *context) {
  auto *group = static_cast<normrt_mpi_group *>(context);
  MPI_Datatype type = mpiType(dtype);
  if (!group || group->comm == MPI_COMM_NULL || type == MPI_DATATYPE_NULL ||
      count < 0 || count > INT_MAX) {
    lastError = "normrt_mpi_allreduce: no group, a dtype MPI cannot sum, or "
                "a count outside [0, INT_MAX]";
    return 1;
  }
  int rc = MPI_Allreduce(MPI_IN_PLACE, data, int(count), type, MPI_SUM,
                         group->comm);
  if (rc != MPI_SUCCESS)
    return mpiFailure("MPI_Allreduce", rc);
  return 0;
}

int normrt_mpi_attach(normrt_layer *layer, normrt_mpi_group *group) {
  return normrt_layer_set_allreduce(layer, group ? normrt_mpi_allreduce : nullptr,
                                    group);
}

const char *normrt_mpi_last_error(void) { return lastError.c_str(); }

} // extern "C"
