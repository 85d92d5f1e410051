/*===- module.h - What a normc-compiled module hands the runtime ---*- C -*-===*\
 *
 * normc writes, beside the kernels of a module, one table of this shape and a
 * constructor that passes it to normrt_register_module(). Both sides include
 * this header; changing a struct here means bumping NORMRT_MODULE_ABI_VERSION.
 *
 * Kernel arguments (Halide `_argv` calling convention: buffers as
 * halide_buffer_t*, scalars by address). Every kernel takes Halide's user
 * context first (args[0] points at a void *): the runtime passes its layer,
 * which the CUDA hooks use to pick the layer's context and stream. The rest
 * of a kernel's arguments are listed, in call order, by the layer's
 * signature for that kernel: one normrt_arg_role each, with
 * NORMRT_ARG_OUTPUT set on the kernel's outputs. normc writes the signatures
 * from the kernels it builds; normrt and normc-bench bind arguments by role.
 *
 * Buffer shapes follow the layer kind's view [s, k, c, n] (normrt/kinds.h):
 * tensors have the view's axes in that order (BatchNorm: [s, c, n]; GroupNorm:
 * [s, k, c, n]; LayerNorm: [k, n]) with the strides of the layer's layout;
 * weight, bias and their gradients have the axes that index them (GroupNorm:
 * [k, c], a flat vector of C values); save_mean, save_invstd and batch_var
 * have the axes the statistics keep (BatchNorm: [c]; InstanceNorm and
 * GroupNorm: [c, n]; LayerNorm: [n]); running statistics are [c]; the
 * counter is a 0-D int64 buffer and `count` an int64 scalar (values per
 * statistic). Parameters and statistics are in the parameter type (f32 for
 * f16/bf16 layers). GPU kernels (device != NORMRT_DEVICE_HOST) take bf16
 * tensors as uint16 buffers of the same bits.
 *   forward_train: x, [residual], [weight, bias]
 *                  -> y, [save_mean], save_invstd, [batch_var]
 *   update_stats:  save_mean, batch_var, running_mean, running_var,
 *                  [num_batches_tracked], count
 *                  -> running_mean', running_var', [num_batches_tracked']
 *   forward_eval:  x, [residual], running_mean, running_var, [weight, bias] -> y
 *   backward:      x, [residual], grad_output, [save_mean], save_invstd,
 *                  [weight, bias] -> grad_input, [grad_residual],
 *                  [grad_weight, grad_bias]
 *   backward_eval: as backward with running_mean, running_var.
 * SyncBatchNorm layers also have (the local halves of the training kernels;
 * batch_mean, batch_m2, sum_dy and sum_dy_xmu are per channel in the
 * accumulator type: f64 for f32/f64 tensors, f32 for f16/bf16; batch_m2 is
 * the sum of squared deviations from batch_mean; count is the global one):
 *   batch_stats:     x -> batch_mean, batch_m2
 *   backward_reduce: x, [residual], grad_output, save_mean, save_invstd,
 *                    [weight, bias] -> sum_dy, sum_dy_xmu
 *   backward_elemt:  x, [residual], grad_output, save_mean, save_invstd,
 *                    [weight, bias], sum_dy, sum_dy_xmu, count
 *                    -> grad_input, [grad_residual]
 * and normalize with forward_eval, given the global mean and biased variance
 * as running_mean and running_var.
\*===----------------------------------------------------------------------===*/

#ifndef NORMRT_MODULE_H
#define NORMRT_MODULE_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define NORMRT_MODULE_ABI_VERSION 10

typedef enum {
  NORMRT_KERNEL_FORWARD_TRAIN = 0,
  NORMRT_KERNEL_UPDATE_STATS = 1,
  NORMRT_KERNEL_FORWARD_EVAL = 2,
  NORMRT_KERNEL_BACKWARD = 3,
  NORMRT_KERNEL_BACKWARD_EVAL = 4,
  /* SyncBatchNorm only: the training kernels split at the reductions, so
   * that the statistics and the gradient sums can be summed across
   * processes between them (docs/runtime.md, "SyncBatchNorm"). */
  NORMRT_KERNEL_BATCH_STATS = 5,
  NORMRT_KERNEL_BACKWARD_REDUCE = 6,
  NORMRT_KERNEL_BACKWARD_ELEMT = 7,
  NORMRT_KERNEL_COUNT = 8
} normrt_kernel_kind;

typedef int (*normrt_kernel_fn)(void **args);

/* What a kernel argument is (the Halide argument names in quotes). */
typedef enum {
  NORMRT_ARG_X = 0,                /* "x" */
  NORMRT_ARG_RESIDUAL = 1,         /* "residual" */
  NORMRT_ARG_GRAD_OUTPUT = 2,      /* "grad_output" */
  NORMRT_ARG_WEIGHT = 3,           /* "weight" */
  NORMRT_ARG_BIAS = 4,             /* "bias" */
  NORMRT_ARG_RUNNING_MEAN = 5,     /* "running_mean" */
  NORMRT_ARG_RUNNING_VAR = 6,      /* "running_var" */
  NORMRT_ARG_NUM_BATCHES_TRACKED = 7, /* "num_batches_tracked" */
  NORMRT_ARG_SAVE_MEAN = 8,        /* "save_mean" */
  NORMRT_ARG_SAVE_INVSTD = 9,      /* "save_invstd" */
  NORMRT_ARG_BATCH_VAR = 10,       /* "batch_var" */
  NORMRT_ARG_COUNT = 11,           /* "count", an int64 scalar */
  NORMRT_ARG_Y = 12,               /* "y" */
  NORMRT_ARG_GRAD_INPUT = 13,      /* "grad_input" */
  NORMRT_ARG_GRAD_RESIDUAL = 14,   /* "grad_residual" */
  NORMRT_ARG_GRAD_WEIGHT = 15,     /* "grad_weight" */
  NORMRT_ARG_GRAD_BIAS = 16,       /* "grad_bias" */
  NORMRT_ARG_BATCH_MEAN = 17,      /* "batch_mean", accumulator type */
  NORMRT_ARG_BATCH_M2 = 18,        /* "batch_m2", accumulator type */
  NORMRT_ARG_SUM_DY = 19,          /* "sum_dy", accumulator type */
  NORMRT_ARG_SUM_DY_XMU = 20,      /* "sum_dy_xmu", accumulator type */
  NORMRT_ARG_ROLE_COUNT = 21
} normrt_arg_role;
/* Set on a signature entry that the kernel writes. */
#define NORMRT_ARG_OUTPUT 0x100

/* The Halide argument name of a role (outputs that share an input's name,
 * like update_stats' running_mean, are that name with "_out"). */
static inline const char *normrt_arg_role_name(int32_t role) {
  static const char *const names[NORMRT_ARG_ROLE_COUNT] = {
      "x",         "residual",    "grad_output", "weight",
      "bias",      "running_mean", "running_var", "num_batches_tracked",
      "save_mean", "save_invstd", "batch_var",   "count",
      "y",         "grad_input",  "grad_residual", "grad_weight",
      "grad_bias", "batch_mean",  "batch_m2",    "sum_dy",
      "sum_dy_xmu"};
  role &= ~NORMRT_ARG_OUTPUT;
  return role >= 0 && role < NORMRT_ARG_ROLE_COUNT ? names[role] : "?";
}

/* The arguments of one kernel, after the user context. */
typedef struct normrt_kernel_signature {
  const int32_t *args; /* normrt_arg_role, | NORMRT_ARG_OUTPUT for outputs */
  int32_t num_args;
  int32_t reserved;
} normrt_kernel_signature;

/* Where a layer's kernels run (normrt_layer_desc::device). */
typedef enum {
  NORMRT_DEVICE_HOST = 0,
  NORMRT_DEVICE_CUDA = 1,
  NORMRT_DEVICE_OPENCL = 2
} normrt_device_kind;

/* One compiled variant of a layer's kernels. A target label with a list of
 * CPU targets has one variant per target, best first; normrt runs the first
 * variant whose CPU features the machine has, and refuses the layer when it
 * has none of them (it never runs code that would die with SIGILL). */
typedef struct normrt_kernel_variant {
  const char *target_string; /* the Halide target the variant was built for */
  /* Comma-separated CPU features (names of cpu_features.h) the variant's
   * code may use; "" when it needs none of them. */
  const char *cpu_features;
  normrt_kernel_fn kernels[NORMRT_KERNEL_COUNT]; /* NULL where not needed */
  /* The same kernels with non-temporal (streaming) stores of their
   * whole-tensor outputs (y, grad_input, grad_residual), for tensors larger
   * than the last-level cache; NULL where a kernel has no such variant
   * (GPU targets, update_stats). Same arguments and results. */
  normrt_kernel_fn streaming_kernels[NORMRT_KERNEL_COUNT];
} normrt_kernel_variant;

/* Field order keeps every member naturally aligned without padding surprises:
 * pointers, then 8-byte scalars, then 4-byte ones. normc mirrors this struct
 * field by field (compiler/LayerTable.cpp, checked at compile time). */
typedef struct normrt_layer_desc {
  const char *name;          /* layer name in the spec */
  const char *target;        /* target label */
  const char *target_string; /* the label's Halide target string(s), resolved */
  const char *kind;          /* a kind of normrt/kinds.h: "BatchNorm2d" ... */
  const normrt_kernel_variant *variants; /* num_variants of them, best first */
  /* NORMRT_KERNEL_COUNT signatures, by normrt_kernel_kind; num_args 0 for
   * kernels the layer does not have. */
  const normrt_kernel_signature *signatures;
  const int64_t *normalized_shape; /* LayerNorm, RMSNorm; else NULL */
  int64_t num_features; /* channels, or elements of normalized_shape */
  int64_t num_groups;   /* GroupNorm; else 0 */
  double eps;
  double momentum;
  int32_t spatial_rank; /* 1-3; -1 any (GroupNorm); 0 LayerNorm, RMSNorm */
  int32_t momentum_is_none;
  int32_t affine;
  int32_t track_running_stats;
  int32_t dtype;       /* normrt_dtype of x and y */
  int32_t param_dtype; /* normrt_dtype of weight, bias, statistics */
  int32_t device;      /* normrt_device_kind */
  int32_t layout;      /* 0 contiguous (NCHW...), 1 channels-last (NHWC...) */
  int32_t num_variants;
  int32_t normalized_ndim; /* dimensions of normalized_shape */
  int32_t bias;            /* the affine form has a bias */
  int32_t activation;      /* 0 none, 1 relu, 2 silu */
  int32_t residual;        /* takes a residual input */
  /* A spec layer with several dtypes or layouts (dtype=[f32, bf16],
   * layout=[NCHW, NHWC]) has one desc per (dtype, layout) form, consecutive
   * in the table and sharing the name and target: the first has num_forms =
   * their number, the others 0 (they are found through the first). A layer
   * of one form has 1. The forms share the parameter dtype. */
  int32_t num_forms;
} normrt_layer_desc;

struct halide_buffer_t;
struct halide_device_interface_t;

/* Entry points of the Halide CUDA runtime that a module with CUDA layers
 * carries. The runtime reaches them through the table, so that it links
 * against modules without CUDA too. Contexts and streams are CUcontext and
 * CUstream, passed as void *. */
typedef int (*normrt_cuda_acquire_context_fn)(void *user_context,
                                              void **context, bool create);
typedef int (*normrt_cuda_release_context_fn)(void *user_context);
typedef int (*normrt_cuda_get_stream_fn)(void *user_context, void *context,
                                         void **stream);
typedef struct normrt_cuda_api {
  const struct halide_device_interface_t *(*device_interface)(void);
  int (*wrap_device_ptr)(void *user_context, struct halide_buffer_t *buffer,
                         uint64_t device_pointer);
  int (*detach_device_ptr)(void *user_context, struct halide_buffer_t *buffer);
  normrt_cuda_acquire_context_fn (*set_acquire_context)(
      normrt_cuda_acquire_context_fn handler);
  normrt_cuda_release_context_fn (*set_release_context)(
      normrt_cuda_release_context_fn handler);
  normrt_cuda_get_stream_fn (*set_get_stream)(normrt_cuda_get_stream_fn handler);
} normrt_cuda_api;

/* The entry points of the module's own Halide runtime that normrt calls.
 * normrt reaches the Halide runtime only through its modules' tables, so a
 * program links `module.a libnormrt.a` in that order (or any order) without
 * unresolved Halide symbols, whether or not it includes the module's header. */
typedef void (*normrt_halide_error_handler)(void *user_context,
                                            const char *message);
typedef struct normrt_halide_api {
  normrt_halide_error_handler (*set_error_handler)(
      normrt_halide_error_handler handler);
  int (*set_num_threads)(int threads);
  int (*copy_to_device)(void *user_context, struct halide_buffer_t *buffer,
                        const struct halide_device_interface_t *interface);
  int (*copy_to_host)(void *user_context, struct halide_buffer_t *buffer);
  int (*device_free)(void *user_context, struct halide_buffer_t *buffer);
  int (*device_sync)(void *user_context, struct halide_buffer_t *buffer);
  int (*reuse_device_allocations)(void *user_context, bool reuse);
  /* halide_set_custom_malloc / halide_set_custom_free: normrt installs its
   * scratch allocator (blocks kept between calls) when it registers the
   * module. */
  void *(*(*set_custom_malloc)(void *(*)(void *, size_t)))(void *, size_t);
  void (*(*set_custom_free)(void (*)(void *, void *)))(void *, void *);
} normrt_halide_api;

typedef struct normrt_module {
  int32_t abi_version;
  int32_t num_layers;
  const char *name;
  const normrt_layer_desc *layers;
  const normrt_halide_api *halide;
  const normrt_cuda_api *cuda; /* NULL when no layer runs on CUDA */
  /* Halide's OpenCL device interface; NULL when no layer runs on OpenCL. */
  const struct halide_device_interface_t *(*opencl_device_interface)(void);
} normrt_module;

/* The index of the variant of `desc` that this CPU runs: the first whose CPU
 * features it has; -1 when it has none (normrt_layer_create then fails and
 * says which features are missing). Implemented by normrt. */
int32_t normrt_runnable_variant(const normrt_layer_desc *desc);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMRT_MODULE_H */
