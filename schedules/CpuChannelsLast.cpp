//===- CpuChannelsLast.cpp - CPU schedules for channels-last tensors ------===//
//
// This file implements the CPU schedule of every kernel for channels-last
// tensors (NLC, NHWC, NDHWC), seen as [s, c, n] with c the stride-1 axis.
//
// A channel's values are C elements apart, so per-channel reductions run
// across all channels at once, vectorized along c: each parallel task sums a
// group of rows (positions of any image, or whole images when there are 16
// or more) into its own vector of per-channel partial sums (rfactor), and
// the partials are added at the end. Cache-resident tensors whose rows are
// whole strips of channels, and rows whose partials outgrow L1 (2048), are
// summed in strips of channels with the sums in registers (scheduleStrips);
// other rows load and store their partials per row, in L1. Train
// forward's statistics are one pass of shifted sums
// (compiler/KernelAlgorithms.cpp), so x is read twice: 4 transfers, the
// channels-last floor of the performance model of docs/design.md.
// Elementwise outputs are vectorized along c and parallel over runs of
// positions of one image, or groups of whole images where images are small.
//
// Not done, measured: blocking by channels, one task summing a block of 16
// channels over all rows and then writing the block's output while it is
// in L2 (what the planar train forward does per channel), took 32x2048x7x7
// f32 train forward from 2.1 to 6.1 ms on a Zen 4. A block's rows are C x
// 4 bytes apart, a power of two for the usual C, so they map to 1/128th of
// L2's sets (the block gets the share of L2 its columns have of a row) and
// each row is a page of its own for the TLB: the re-read missed L2, and
// both passes waited on memory.
//
// Fewer channels than a vector leave most lanes predicated off: C = 3 (RGB)
// is specialized to run vectors across positions with the channels unrolled
// (scheduleFewChannels*): 32x3x224x224 NHWC f32 train forward measured
// 85.1 -> 6.8 ms on 2 cores of an AMD EPYC (Zen 4), eval 7.9 -> 1.5 ms,
// backward 251 -> 7.2 ms. Other small counts (16, 32) still vectorize
// across channels.
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;

namespace normc {
namespace schedules {

/// Rows (positions of one image, C values each) per task.
static Expr rowsPerTask(const KernelStages &k) {
  return unitsPerTask(k.channels);
}

static void scheduleFewChannelsReduction(Func f, RDom r, const KernelStages &k,
                                        int V);

/// At most this many tasks (and per-channel partial sums) in a channels-last
/// reduction. Each task's partials are C values of every sum, in the
/// accumulation type, allocated and added serially at the end; with one task
/// per 16K values, 32x2048x7x7 made 196 partials of 2048 double pairs (6.4
/// MB) a call. 64 tasks keep 16 cores busy with room to balance.
constexpr int kMaxReductionTasks = 64;

/// Vectors of channels a reduction task sums at once over its rows: two
/// f32 vectors are four f64 ones per sum, which backward's two sums, the
/// mean and the loads keep within 32 registers (with four vectors, backward
/// spilled its accumulators to the stack in the loop over rows).
constexpr int kStripVectors = 2;

/// Rows (positions) a reduction task sums at least. A task's partials are
/// C pairs of accumulators, 4 times the bytes of a row of f32 (8 of bf16):
/// with 4 rows a task, 256x4096 f32 BatchNorm1d wrote and then added as
/// many bytes of partials as it read of x (train forward 0.42 -> 0.49 ms
/// against the 16-channels-a-task schedule it replaced, on 2 cores of a
/// Zen 4). Images of 16 positions or more meet it anyway.
constexpr int kMinRowsPerReductionTask = 16;

/// Images enough for image groups to be the reduction's tasks.
constexpr int kImagesForImageTasks = 16;

/// A row's partial sums (C of each sum) above this size are summed in
/// strips (scheduleStrips); smaller ones stay in L1 between rows (32 KB
/// on Zen 4, 48 KB on recent Intel cores, with a row of x beside them).
constexpr int kRowPartialBytes = 16384;

/// Tensors up to this size whose rows are whole strips are summed in
/// strips (scheduleStrips) whatever their rows' width; larger ones only
/// where a row's partials outgrow L1. Where x comes from memory rather
/// than from the cache, the strips' second pass over a chunk cost more than
/// the partials' loads and stores in L1 saved: on 2 cores of a Zen 4 (32
/// MB L3), 32x64x56x56 NHWC f32 (25.7 MB) backward 2.1-2.4 -> 2.8-3.0 ms
/// and 32x256x28x28 f32 backward 2.2-2.3 -> 3.3-3.7 in strips, while
/// 32x32x56x56 (12.8 MB) train forward gained (0.65 -> 0.49).
constexpr int64_t kStripsTensorBytes = int64_t(16) << 20;

/// Bytes of x a reduction task reads in one chunk of rows: its strips read
/// the chunk once from memory and then from L2. Each row of a chunk is a
/// stream of its own for the prefetchers (a strip reads a line or two of
/// every row, then the next strip the next lines), so a chunk is a few rows:
/// 8 rows of 2048 f32 channels. Measured on 2 cores of a Zen 4, 32x2048x7x7
/// NHWC f32 backward / train forward: 256 KB chunks (32 rows) 1.76 / 0.90
/// ms, 64 KB 1.15 / 0.77, 32 KB 1.11 / 0.82, 16 KB 1.37 / 1.00 (medians of 4
/// alternated runs; 16x4096x7x7 preferred 64 KB to 32 KB: 1.21 / 1.07 vs
/// 1.39 / 1.19).
constexpr int kChunkBytes = 64 * 1024;

/// Schedules the partial sums `partial` that an rfactor over `task` made:
/// computed at root, in parallel over the tasks. Within a task, the rows
/// (`inner` innermost, then `outer`) are cut into chunks of about
/// kChunkBytes, and a chunk is summed in strips of kStripVectors vectors of
/// channels over all its rows, so that the strip's sums stay in registers
/// across the rows instead of a load and store of every partial per row (a
/// row of 2048 channels read 4 bytes of x per 32 of partials), while the
/// chunk comes from memory once (strips over a whole 112 x 112 image read
/// it once per strip: 64x64x112x112 train 15.9 -> 20 ms). The total `f`
/// adds the partials a task at a time, each a contiguous row of C (with the
/// tasks innermost every load was 16 KB from the last for 2048 f64 sums:
/// 0.5 ms of serial cache misses on 8x2048x7x7).
static void scheduleStrips(Func partial, Stage total, RVar taskRVar,
                           RVar inner, std::vector<VarOrRVar> outer,
                           const KernelStages &k, int V,
                           LoopLevel partialsAt) {
  Var c = k.c, task("task"), strip("strip");
  RVar chunk("chunk");
  partial.compute_at(partialsAt)
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .parallel(task);
  Expr chunkRows = max(1, kChunkBytes / max(k.channels * k.ioType.bytes(), 1));
  // The loops from `innermost` out, then the outer rows and the task.
  auto loops = [&](std::vector<VarOrRVar> innermost) {
    innermost.insert(innermost.end(), outer.begin(), outer.end());
    innermost.push_back(task);
    return innermost;
  };
  int partialBytes = 0;
  for (const Type &t : partial.output_types())
    partialBytes += t.bytes();
  // Cache-resident tensors whose rows are whole strips (C a multiple of
  // 2V) keep the sums in registers whatever the row's width: against
  // loading and storing a row's partials per row, measured on 2 cores of a
  // Zen 4 (ms, train forward): 32x256x14x14 f32 0.28 -> 0.24, 8x64x56x56
  // f32 0.32 -> 0.22, bf16 0.21 -> 0.15, 32x32x56x56 f32 0.65 -> 0.56. A
  // strip's tail is predicated vectors, which cost more than the partials'
  // loads and stores (32x32x56x56 bf16 in a strip of 64 channels of which
  // 32 are live: 0.43 -> 3.4 ms). Strips of one vector for rows of an odd
  // number of vectors were faster too (32x16x56x56 f32 0.37 -> 0.22), but
  // a third variant of every reduction made kernels compile 25% longer
  // (test/unit/specs/half.norm: 27 -> 34 s), so those rows keep their
  // per-row partials.
  Stage update = partial.update();
  Expr cacheResident = cast<int64_t>(k.spatial) * k.batch * k.channels *
                           k.ioType.bytes() <=
                       Expr(kStripsTensorBytes);
  update
      .specialize((cacheResident && k.channels % (kStripVectors * V) == 0) ||
                  k.channels * partialBytes > kRowPartialBytes)
      .split(c, strip, c, kStripVectors * V, TailStrategy::GuardWithIf)
      .split(inner, chunk, inner, chunkRows, TailStrategy::GuardWithIf)
      .reorder(loops({c, inner, strip, chunk}))
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .unroll(c)
      .parallel(task);
  // Other rows whose partials fit in L1 load and store them per row, the
  // rows read in order. Where C is not a multiple of V, only the loads of
  // a row's tail vector are predicated (PredicateLoads; the partials are
  // V-aligned scratch, stored whole): with predicated stores too
  // (GuardWithIf), the next row's masked load of the same partials waited
  // for the masked store, which the core does not forward (32x24x56x56
  // NHWC bf16 train forward: 1.65-1.76 ms -> 0.51). Multiples of V keep
  // the unpredicated loop (PredicateLoads left every load masked there:
  // 32x32x56x56 f32 train 0.67 -> 0.86 ms).
  update.specialize(k.channels % V == 0)
      .reorder(loops({c, inner}))
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .parallel(task);
  update.reorder(loops({c, inner}))
      .vectorize(c, V, TailStrategy::PredicateLoads)
      .parallel(task);
  total.reorder(c, taskRVar).vectorize(c, V, TailStrategy::GuardWithIf);
}

void scheduleRowsReduction(Stage update, RDom r, const KernelStages &k,
                           int V, LoopLevel partialsAt) {
  Var task("task");
  // Rows a task sums at least: about kValuesPerTask values, at most
  // kMaxReductionTasks tasks, at least kMinRowsPerReductionTask rows.
  Expr groupRows =
      max(rowsPerTask(k),
          (k.spatial * k.batch + kMaxReductionTasks - 1) / kMaxReductionTasks,
          kMinRowsPerReductionTask);
  // Many images, or images smaller than a task: the tasks are groups of
  // whole images, so that a row's position and image are loop counters (a
  // fused row index costs a division per row and strip).
  RVar images("images"), imagesInner("images_inner");
  Expr imagesPerGroup =
      max(unitsPerTask(k.spatial * k.channels),
          (k.batch + kMaxReductionTasks - 1) / kMaxReductionTasks,
          (kMinRowsPerReductionTask + k.spatial - 1) / k.spatial);
  Stage byImages = update.specialize(k.batch >= kImagesForImageTasks ||
                                     k.spatial < groupRows);
  Func imagePartial =
      byImages
          .split(r.y, images, imagesInner, imagesPerGroup,
                 TailStrategy::GuardWithIf)
          .rfactor(images, task);
  scheduleStrips(imagePartial, byImages, images, r.x, {imagesInner}, k, V,
                 partialsAt);

  // Otherwise (a few images of a task or more each): each image cut into
  // runs of positions of equal length, a task a run, position and image
  // still loop counters. With all rows of the tensor fused into one index
  // and cut into groups, every row divided its index by the image's size:
  // 8x64x16x56x56 NHWC bf16 train forward spent a fifth of its sums'
  // samples on that division and the row's address (rows of 64 channels,
  // two vectors of work). The image is the inner half of the task index,
  // as in the outputs.
  RVar run("run"), inRun("in_run"), group("group");
  Expr runRows = equalRunLength(k.spatial, groupRows);
  Func partial = update.split(r.x, run, inRun, runRows, TailStrategy::GuardWithIf)
                     .fuse(r.y, run, group)
                     .rfactor(group, task);
  scheduleStrips(partial, update, group, inRun, {}, k, V, partialsAt);
}

static void scheduleReduction(Func f, RDom r, const KernelStages &k, int V) {
  scheduleFewChannelsReduction(f, r, k, V);
  f.compute_root().vectorize(k.c, V, TailStrategy::GuardWithIf);
  scheduleRowsReduction(f.update(), r, k, V);
}

/// Channel counts below a vector that get a schedule of their own: vectors
/// across positions, with the channels unrolled. (Images: RGB.)
constexpr int kFewChannels[] = {3};

/// The output's c loop runs over the input's channels (the same extent,
/// which normrt checks), so that a specialization on a channel count makes
/// the loop's extent a constant.
static void tieChannelExtent(Func f, const KernelStages &k) {
  int dim = 0;
  for (int a = 0; a < normrt::kinds::C; ++a)
    dim += k.plan.has[a] ? 1 : 0;
  f.output_buffer().dim(dim).set_extent(k.channels);
}

/// For each of kFewChannels: y's rows of C values are written C vectors at a
/// time, one per channel, each across V positions (a load of stride C, which
/// Halide makes dense loads and shuffles; C stores of stride C, which it
/// interleaves into dense stores), instead of one vector of C live lanes a
/// row.
static void scheduleFewChannels(Func f, const KernelStages &k, int V) {
  tieChannelExtent(f, k);
  Var s = k.s, c = k.c, n = k.n;
  for (int C : kFewChannels) {
    // Positions are not fused across images: a fused index would divide per
    // lane. Tasks are runs of positions of one image, whole vectors long.
    Var sOuter("s_outer"), task("task");
    Expr positions = (unitsPerTask(C) + V - 1) / V * V;
    Stage few = f.specialize(k.channels == C);
    // Images of a task or more: an image's last task is shifted inwards to
    // overlap the one before it (both write the same values), so that no
    // vector is predicated. A predicated vector of C interleaved channels
    // is C masked gathers and scatters: with a tail in every task of 5461
    // positions, 32x3x224x224 NHWC bf16 eval spent 57% of its samples in
    // the tails (perf annotate).
    few.specialize(k.spatial >= positions)
        .reorder(c, s, n)
        .split(s, sOuter, s, positions, TailStrategy::ShiftInwards)
        .fuse(sOuter, n, task)
        .parallel(task)
        .vectorize(s, V)
        .unroll(c);
    // Smaller images: tasks of whole images, a vector's tail shifted
    // inwards where an image has a vector of positions (4x3x7x7 bf16 eval
    // took 0.10 ms with its tails predicated).
    Stage small = few.reorder(c, s, n)
                      .split(n, task, n, unitsPerTask(C * k.spatial, k.batch),
                             TailStrategy::GuardWithIf)
                      .parallel(task)
                      .unroll(c);
    small.specialize(k.spatial >= V).vectorize(s, V, TailStrategy::ShiftInwards);
    small.vectorize(s, V, TailStrategy::GuardWithIf);
  }
}

/// For each of kFewChannels: the per-channel sums run across positions
/// instead of across channels. Each task (a run of positions of one image)
/// keeps V partial sums per channel, one per lane, and adds V consecutive
/// positions to them at a time (a load of stride C per channel); the
/// partials of all tasks and lanes are added at the end.
static void scheduleFewChannelsReduction(Func f, RDom r, const KernelStages &k,
                                        int V) {
  Var c = k.c;
  for (int C : kFewChannels) {
    RVar vectors("vectors"), runs("runs"), inRun("in_run"), run("run"),
        lane("lane");
    Var task("task"), laneVar("lane_v");
    Expr vectorsPerRun = (unitsPerTask(C) + V - 1) / V;
    Stage few = f.update().specialize(k.channels == C);
    // Lanes first, then runs of whole vectors: split the other way round
    // (runs of positions, then lanes), an image's last run went through
    // all of a run's vectors with their lanes predicated off, 171 of them
    // on a 3 x 3 image (64x3x3x3 bf16 train forward: 0.92 ms).
    few.split(r.x, vectors, lane, V, TailStrategy::GuardWithIf)
        .split(vectors, runs, inRun, vectorsPerRun, TailStrategy::GuardWithIf)
        .fuse(runs, r.y, run);
    Func partial = few.rfactor({{run, task}, {lane, laneVar}});
    // A channel's V lanes side by side: rfactor appends the new vars, so
    // by default the lanes were C x tasks values apart, and every add was
    // a gather and a scatter of V scalars.
    partial.reorder_storage(laneVar, c, task)
        .compute_root()
        .vectorize(laneVar)
        .parallel(task);
    partial.update()
        .reorder(laneVar, c, inRun, task)
        .vectorize(laneVar)
        .unroll(c, C, TailStrategy::GuardWithIf)
        .parallel(task);
  }
}

void scheduleCpuChannelsLast(KernelStages &k, const Target &target) {
  const int V = target.natural_vector_size(k.ioType);
  Var s = k.s, c = k.c, n = k.n;

  for (auto &reduction : k.reductions)
    scheduleReduction(reduction.f, reduction.r, k, V);
  scheduleChannelStagesAtRoot(k, V);

  for (Func f : k.tensorOutputs) {
    scheduleFewChannels(f, k, V);
    Var sOuter("s_outer"), sInner("s_inner"), task("task");
    // Rows of C contiguous values, grouped to about kValuesPerTask a task,
    // kMaxTasksPerPass tasks at most: 16 rows a task measured 1.28x a copy
    // on 64x64x112x112 NHWC f32, the overhead of 50,000 tasks showing.
    Expr rows = unitsPerTask(k.channels, k.spatial * k.batch);
    // Positions and images stay loop counters: with the rows of all images
    // fused into one index, every row divided that index by the image's
    // size (idiv), which cost more than a row of 16 or 32 channels
    // (32x16x56x56 NHWC f32 eval 0.53 ms, oneDNN 0.24). Images of a task
    // or more are cut into runs of positions of equal length (a short last
    // run would be a task of its own). Three things Halide 14 needs here:
    // the inner Var is not named `s` (split(s, outer, s, ..., GuardWithIf)
    // dropped the position from the addresses, every row of a run written
    // at its first row's place); the counts are at least 1; and the image
    // is the inner half of the task index (with the run inner, bounds
    // inference divided the task by a count of unknown sign and required x
    // from image -127 on).
    Expr runRows = equalRunLength(k.spatial, rows);
    f.specialize(k.spatial >= rows)
        .reorder(c, s, n)
        .split(s, sOuter, sInner, runRows, TailStrategy::GuardWithIf)
        .reorder(c, sInner, n, sOuter)
        .fuse(n, sOuter, task)
        .parallel(task)
        .vectorize(c, V, TailStrategy::GuardWithIf);
    // Smaller images: tasks of whole images.
    f.reorder(c, s, n)
        .split(n, task, n, (rows + k.spatial - 1) / k.spatial,
               TailStrategy::GuardWithIf)
        .parallel(task)
        .vectorize(c, V, TailStrategy::GuardWithIf);
  }
}

} // namespace schedules
} // namespace normc
