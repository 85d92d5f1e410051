/*===- normrt_mpi.h - SyncBatchNorm over MPI communicators ---------*- C -*-===*\
 *
 * The allreduce hook of normrt (normrt_layer_set_allreduce) on an MPI
 * communicator: a SyncBatchNorm layer attached to a group normalizes with
 * the statistics of the batch of every process of the group. A small
 * library of its own (libnormrt_mpi), so that normrt itself never depends
 * on MPI. The program initializes and finalizes MPI.
 *
 *   normrt_mpi_group *group = normrt_mpi_group_create(MPI_COMM_WORLD);
 *   normrt_mpi_attach(layer, group);    // every process, the same layers
 *   ... training forwards and backwards, the same calls on every process ...
 *   normrt_mpi_group_destroy(group);    // after the layers stop using it
\*===----------------------------------------------------------------------===*/

#ifndef NORMRT_MPI_H
#define NORMRT_MPI_H

#include <mpi.h>

#include "normrt/normrt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct normrt_mpi_group normrt_mpi_group;

/* A group for layers' collectives over the processes of `comm`: a
 * duplicate of it (normrt's collectives never match the program's own
 * messages on `comm`) whose errors are returned, not fatal. Collective over
 * `comm`. NULL on failure (normrt_last_error says why). */
normrt_mpi_group *normrt_mpi_group_create(MPI_Comm comm);

/* Frees the duplicate communicator (collective). NULL is ignored. */
void normrt_mpi_group_destroy(normrt_mpi_group *group);

/* The group's communicator (the duplicate). */
MPI_Comm normrt_mpi_group_comm(const normrt_mpi_group *group);

/* A normrt_allreduce_fn: MPI_Allreduce(MPI_IN_PLACE, data, count, ...,
 * MPI_SUM) on the group passed as `context`. Returns 0, or the MPI error
 * code (its text is in normrt_mpi_last_error()). */
int normrt_mpi_allreduce(void *data, int64_t count, int32_t dtype,
                         void *context);

/* normrt_layer_set_allreduce(layer, normrt_mpi_allreduce, group); a NULL
 * group detaches the layer (it then behaves as BatchNorm). */
int normrt_mpi_attach(normrt_layer *layer, normrt_mpi_group *group);

/* The text of this thread's last failed normrt_mpi_allreduce ("" if none). */
const char *normrt_mpi_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMRT_MPI_H */
