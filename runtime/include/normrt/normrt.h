/*===- normrt.h - The normc runtime's C ABI ------------------------*- C -*-===*\
 *
 * This header is the contract between programs and the layers that normc
 * compiles. A layer is created by the name it has in a .norm spec and the
 * label of one of the spec's targets, from the modules linked into the
 * program (or loaded with dlopen); it owns its parameters and statistics and
 * calls the generated kernels. Semantics are those of the torch.nn class of
 * the layer's kind (BatchNorm*d, InstanceNorm*d, GroupNorm, LayerNorm,
 * RMSNorm), with the epilogue y = activation(norm(x) + residual) where the
 * spec asks for one.
 *
 * Every call that can fail returns 0 on success and non-zero on failure; the
 * message of the last failure on the calling thread is normrt_last_error().
 * A failed call changes no layer state. Shapes and strides are in PyTorch
 * order (outermost first); strides are in elements, all zero = dense in the
 * layer's layout (contiguous, or channels-last for NHWC-style layers).
\*===----------------------------------------------------------------------===*/

#ifndef NORMRT_NORMRT_H
#define NORMRT_NORMRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  NORMRT_FLOAT32,
  NORMRT_FLOAT64,
  NORMRT_FLOAT16,
  NORMRT_BFLOAT16,
  NORMRT_INT64
} normrt_dtype;

#define NORMRT_MAX_DIMS 8

typedef struct {
  void *data;
  int32_t ndim;
  int64_t shape[NORMRT_MAX_DIMS];
  int64_t strides[NORMRT_MAX_DIMS]; /* elements; all 0 = contiguous */
  normrt_dtype dtype;
  int32_t device; /* 0 host, 1 CUDA (CUDA layers only) */
} normrt_tensor;

typedef struct normrt_layer normrt_layer;
struct normrt_module;

/* Creates a layer in training mode with PyTorch's initial state (weight 1,
 * bias 0, running_mean 0, running_var 1, num_batches_tracked 0). `layer` is a
 * layer name from a spec, or "module.layer" where two linked modules define
 * the same name; `target` is a target label from the spec, such as "cpu".
 * Returns NULL on failure. */
normrt_layer *normrt_layer_create(const char *layer, const char *target);
void normrt_layer_destroy(normrt_layer *);

/* Like module.train() (training != 0) and module.eval() (training == 0). */
int normrt_layer_set_training(normrt_layer *, int training);

/* y = norm(x) (layers without a residual). In training mode (or in eval mode without running
 * statistics) normalizes with batch statistics and saves save_mean and
 * save_invstd; in training mode with running statistics it also updates
 * running_mean, running_var and num_batches_tracked. y must have x's shape
 * and dtype, and must not overlap x (in-place calls are refused). */
int normrt_layer_forward(normrt_layer *, const normrt_tensor *x, normrt_tensor *y);

/* Gradients of the last forward's loss: dx from dy, and when the layer is
 * affine, dweight and dbias (each may be NULL when not wanted). Like autograd,
 * backward differentiates the last successful forward, whatever the layer's
 * mode is now: after a forward with batch statistics (training mode, or eval
 * without running statistics) it uses that forward's save_mean/save_invstd,
 * after an eval forward the running statistics. x must be that forward's
 * input (same shape); without a forward, or with another shape, it fails. */
int normrt_layer_backward(normrt_layer *, const normrt_tensor *x, const normrt_tensor *dy,
                          normrt_tensor *dx, normrt_tensor *dweight, normrt_tensor *dbias);

/* The tensors of one forward: input (x), residual (z; layers with
 * residual=true, else NULL) and output (y). */
typedef struct {
  const normrt_tensor *input;
  const normrt_tensor *residual;
  normrt_tensor *output;
} normrt_forward_args;
/* y = activation(norm(x) + residual); like normrt_layer_forward otherwise. */
int normrt_layer_forward_args(normrt_layer *, const normrt_forward_args *args);

/* The tensors of one backward. grad_residual (dz, the gradient of the
 * residual) is written for layers with residual=true when not NULL; weight
 * and bias gradients as in normrt_layer_backward. The backward recomputes
 * the activation's input from x, the residual and the saved statistics. */
typedef struct {
  const normrt_tensor *input;
  const normrt_tensor *residual;
  const normrt_tensor *grad_output;
  normrt_tensor *grad_input;
  normrt_tensor *grad_residual;
  normrt_tensor *grad_weight;
  normrt_tensor *grad_bias;
} normrt_backward_args;
int normrt_layer_backward_args(normrt_layer *, const normrt_backward_args *args);

/* "weight" "bias" "running_mean" "running_var" "num_batches_tracked"
 * "save_mean" "save_invstd": a view into the layer's own storage, readable and
 * writable. Weight and bias have the parameters' shape (normalized_shape for
 * LayerNorm and RMSNorm, [num_features] otherwise); save_mean and save_invstd
 * hold the last batch-statistics forward's statistics, flat ((N, C) for
 * InstanceNorm, (N, G) for GroupNorm, the rows for LayerNorm), and are valid
 * until a forward with another number of statistics; the others are valid
 * until the layer is destroyed. */
int normrt_layer_state(normrt_layer *, const char *name, normrt_tensor *view);

/* Thread-local message of the last failing call on this thread ("" if none). */
const char *normrt_last_error(void);

/* ---- Extensions ---------------------------------------------------------- */

/* Registers a compiled module. Modules register themselves when linked in
 * (their header references them) or loaded; calling it again is harmless. */
int normrt_register_module(const struct normrt_module *module);

/* Frees the scratch memory the CPU kernels' large intermediates keep
 * between calls (normrt caches freed blocks of 64 KB and more, at most 16
 * blocks and 256 MB, so that calls do not map fresh pages each time).
 * Returns the bytes freed. */
size_t normrt_release_scratch(void);

/* Number of worker threads the CPU kernels use (0 = Halide's default, which
 * honours HL_NUM_THREADS). Returns the previous setting. */
int normrt_set_num_threads(int threads);

/* CPU layers have, besides their kernels, streaming variants of the kernels
 * that write whole tensors (forward, backward): their outputs are written
 * with non-temporal stores, which skip the cache. That pays when the
 * tensors of a call do not fit the last-level cache and costs when they do,
 * so normrt runs a streaming variant only when the tensors one kernel reads
 * and writes (x, residual, grad_output, y, grad_input, grad_residual)
 * together exceed this many bytes and the rows of its outputs (the runs
 * along their stride-1 dimension) are whole 64-byte cache lines. The default
 * is the size of this CPU's last-level cache (as Linux reports it for CPU 0;
 * 32 MiB where it reports none), or NORMRT_STREAMING_THRESHOLD (bytes) when
 * set. 0 streams every call, whatever its rows; INT64_MAX none. A negative
 * value restores the default. Returns the previous threshold. Results are
 * the same either way. */
int64_t normrt_set_streaming_threshold(int64_t bytes);
int64_t normrt_streaming_threshold(void);
/* Whether a call whose tensors (as above) total `tensor_bytes` and whose
 * outputs' rows are `row_bytes` long runs the streaming variants: always at
 * threshold 0, otherwise when tensor_bytes exceeds the threshold and
 * row_bytes is a whole number of 64-byte lines. Returns 1 or 0. */
int normrt_streaming_applies(int64_t tensor_bytes, int64_t row_bytes);

/* CUDA layers: run this layer's kernels in `context` (a CUcontext; NULL
 * keeps the layer's) on `stream` (a CUstream; NULL is the context's default
 * stream), e.g. PyTorch's current context and stream, so that the kernels
 * are ordered with the caller's work. A new CUDA layer runs in the context
 * current on the creating thread, else in the primary context of device
 * HL_GPU_DEVICE (default 0), on the default stream. Changing the context
 * moves the layer's state through the host. */
int normrt_layer_set_cuda_stream(normrt_layer *layer, void *context,
                                 void *stream);

/* Facts about a layer, for wrappers that need to allocate. */
typedef struct {
  const char *name;
  const char *target;
  const char *kind;       /* "BatchNorm2d", "LayerNorm", ... */
  int32_t spatial_rank;   /* 1, 2, 3; -1 any (GroupNorm); 0 LayerNorm, RMSNorm */
  int64_t num_features;
  double eps;
  double momentum;        /* meaningless when momentum_is_none */
  int32_t momentum_is_none;
  int32_t affine;
  int32_t track_running_stats;
  normrt_dtype dtype;      /* of x, y, dx, dy */
  normrt_dtype param_dtype; /* of weight, bias and statistics */
  int32_t training;
  int32_t channels_last;  /* tensors in NLC / NHWC / NDHWC memory order */
  int32_t device;         /* where the kernels run: 0 CPU, 1 CUDA, 2 OpenCL */
  /* The Halide target of the kernels this CPU runs: of a label with a list
   * of CPU targets, the best one whose CPU features this machine has. */
  const char *target_string;
  int64_t num_groups;       /* GroupNorm */
  int32_t normalized_ndim;  /* LayerNorm, RMSNorm: dims of normalized_shape */
  int64_t normalized_shape[NORMRT_MAX_DIMS];
  int32_t bias;             /* the affine form has a bias */
  int32_t activation;       /* 0 none, 1 relu, 2 silu */
  int32_t residual;         /* forward takes a residual */
} normrt_layer_info;
int normrt_layer_get_info(const normrt_layer *, normrt_layer_info *info);

/* A layer declared with several dtypes or layouts (dtype=[f32, bf16],
 * layout=[NCHW, NHWC]) has a compiled form for each pair; every call picks
 * the form whose dtype is its input's and whose layout fits the input's
 * strides (the first that does, in the spec's order), and fails when none
 * does. The forms share one state (their parameter dtype is the same).
 * normrt_layer_get_info describes the first form. normrt_layer_num_forms
 * gives their number (1 for a layer of one dtype and layout);
 * normrt_layer_form the dtype and layout (channels_last) of form `index`,
 * failing for an index out of range. */
int32_t normrt_layer_num_forms(const normrt_layer *layer);
int normrt_layer_form(const normrt_layer *layer, int32_t index,
                      normrt_dtype *dtype, int32_t *channels_last);

/* Names of the layers linked into the program: index 0, 1, ... until NULL. */
const char *normrt_layer_name_at(int index, const char **target);

/* ---- Frameworks: client-owned state, explicit saved statistics ---------- */

/* Makes `storage` the storage of the layer's "weight", "bias",
 * "running_mean", "running_var" or "num_batches_tracked": from now on the
 * kernels read that memory and the layer's updates are written into it
 * (running statistics and the counter after each training forward, as in
 * PyTorch), and normrt_layer_state views point at it. The layer takes the
 * values the memory holds now. `storage` must have the state's dtype
 * (the parameter dtype; int64 for num_batches_tracked), its shape (weight
 * and bias: the parameters' shape or flat; running statistics [C];
 * num_batches_tracked 0-D or [1]), be dense, and not overlap another bound
 * state of the layer; it is host memory (device 0), also for GPU layers,
 * whose kernels then upload it before each call and write it back after.
 * The caller keeps the memory alive until it binds another tensor, unbinds
 * (storage NULL: the layer copies the current values back into its own
 * storage) or destroys the layer. A failed bind changes nothing. */
int normrt_layer_bind_state(normrt_layer *layer, const char *name,
                            const normrt_tensor *storage);

/* The statistics one batch-statistics forward saves for its backward, kept
 * by the caller instead of the layer, so that one layer can serve several
 * forwards before their backwards (as an autograd graph does). `mean` and
 * `invstd` hold normrt_layer_stats_count() values of the parameter dtype
 * each, dense (any shape with that many elements), on the device of the
 * call's tensors; RMSNorm has no mean (`mean` is ignored). `batch_stats`
 * is written by the forward: 1 when it normalized with batch statistics
 * (training mode, or eval without running statistics; then `mean` and
 * `invstd` were written), 0 when it used the running statistics (then the
 * tensors are not touched and may have no data); NORMRT_SAVED_SYNCED (2)
 * when the batch statistics were summed across processes (a SyncBatchNorm
 * layer with an allreduce hook, in training mode): its backward sums the
 * gradients across processes too. */
#define NORMRT_SAVED_SYNCED 2
typedef struct {
  normrt_tensor mean;
  normrt_tensor invstd;
  int32_t batch_stats;
  int32_t reserved;
} normrt_saved_stats;

/* The number of statistics a batch-statistics forward on x saves:
 * C for BatchNorm, N * C for InstanceNorm, N * G for GroupNorm, the rows for
 * LayerNorm and RMSNorm. x is checked as the forward checks it. */
int normrt_layer_stats_count(const normrt_layer *layer, const normrt_tensor *x,
                             int64_t *count);

/* A forward like normrt_layer_forward_args (running statistics and
 * num_batches_tracked are updated in training mode) whose saved statistics
 * go to `saved` instead of the layer: the layer's save_mean/save_invstd and
 * the record of its last forward (which normrt_layer_backward uses) are left
 * as they were. */
int normrt_layer_forward_saved(normrt_layer *layer,
                               const normrt_forward_args *args,
                               normrt_saved_stats *saved);

/* The backward of a forward made with normrt_layer_forward_saved, from what
 * it saved: with batch_stats = 1, `mean` and `invstd` (and x of that
 * forward's shape); with batch_stats = 0, the layer's running statistics as
 * they are now (an eval forward does not change them). The layer's mode
 * does not matter. */
int normrt_layer_backward_saved(normrt_layer *layer,
                                const normrt_backward_args *args,
                                const normrt_saved_stats *saved);

/* ---- SyncBatchNorm: statistics across processes ------------------------ */

/* Sums `count` values of `dtype` (a normrt_dtype; normrt passes
 * NORMRT_FLOAT64) in place over all processes of the caller's group, as
 * MPI_Allreduce with MPI_SUM does; `context` is the one given to
 * normrt_layer_set_allreduce. Returns 0, or non-zero on failure. Every
 * process of the group calls it the same number of times with the same
 * count, in the same order. */
typedef int (*normrt_allreduce_fn)(void *data, int64_t count, int32_t dtype,
                                   void *context);

/* Makes a SyncBatchNorm layer normalize with the statistics of the global
 * batch (the concatenation of every process's input) in training mode:
 * normrt calls `fn` twice in each training forward (the channels' counts
 * and sums, then their squared deviations) and once in its backward (the
 * gradient sums). grad_weight and grad_bias stay this process's own
 * contribution. A process whose checks or kernels fail still takes part
 * in the call's first collective, so every process returns an error. A
 * NULL `fn` removes the hook: the layer then behaves as BatchNorm. CPU
 * layers only. */
int normrt_layer_set_allreduce(normrt_layer *layer, normrt_allreduce_fn fn,
                               void *context);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMRT_NORMRT_H */
