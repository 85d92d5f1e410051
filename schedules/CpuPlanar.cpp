//===- CpuPlanar.cpp - CPU schedules for PyTorch-order tensors ------------===//
//
// This file implements the CPU schedule of every kernel for contiguous
// NC[D][H]W tensors, seen as [s, c, n] with s the flattened spatial axis.
//
// Train forward of BatchNorm2d/3d layers is blocked by channel: one parallel
// task computes a block of channels' statistics and then its output (one
// channel where rows are 4 KB or more), so the second read of the block's
// slab can come from cache (3 transfers when the slab fits; see the
// performance model in docs/design.md); rows of 512 bytes to 4 KB with many
// channels are read in memory order instead, both passes image by image.
// Other reductions (backward, and BatchNorm1d) are computed at root, one
// channel per parallel task, or, for rows shorter than 4 KB with many
// channels, image by image (partials per channel and image) so that memory
// is read in order. When a channel's rows are at least a vector long,
// rfactor turns the sum along s into V independent lane accumulators per
// group of images (groups as nested parallel tasks, so that a few channels
// still use every core); when they are shorter the schedule vectorizes
// across channels instead, and with s = 1 (BatchNorm1d on (N, C)), where
// the channels are contiguous, it takes the channels-last row reductions
// (scheduleRowsReduction). Elementwise outputs are vectorized along s and
// parallel over groups of (c, n) rows, or across channels for short rows.
// Tails are handled without scalar loops: ShiftInwards for outputs
// (recomputing a few lanes is harmless), predication for reductions.
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;

namespace normc {
namespace schedules {

/// Channels enough to keep every core busy with one task per channel, in
/// the blocked train forward.
constexpr int kChannelsForWholeTasks = 16;
/// The same for reductions at root (backward): with this many channels
/// their image groups are not nested tasks too.
constexpr int kChannelsForFlatReductions = 64;

/// Bytes of each image a task of the blocked train forward covers at least:
/// with short rows (7 x 7 f32 is 196 bytes) a task is a block of adjacent
/// channels. One channel a task measured 5.4 ms on 32x2048x7x7 f32 on 2
/// cores of a Zen 4 against 2.9 ms on one core: the two cores took adjacent
/// channels, whose rows share their first and last cache lines, and each
/// store to those lines pulled them from the other core. 4 KB rows leave
/// 2 shared lines in 64.
constexpr int kBlockRowBytes = 4096;

/// Rows (a channel of one image) shorter than this are summed image by
/// image in backward (scheduleImageByImage).
constexpr int kShortRowBytes = 4096;

/// Rows shorter than this (8 vectors) stay blocked in train forward even
/// when backward sums them image by image: image by image, each row ends in
/// a sum across its V lanes, which a row of a few vectors does not repay.
/// Measured on 2 cores of a Zen 4, blocked -> image by image: 32x2048x7x7
/// f32 (196-byte rows) 1.63 -> 1.48 ms, its bf16 1.05 -> 1.66, 32x1024x14x14
/// bf16 (392 bytes) 1.23 -> 1.95, but 32x1024x14x14 f32 (784 bytes) 2.71 ->
/// 2.18 and 64x256x28x28 bf16 (1568 bytes) 4.16 -> 1.82.
constexpr int kMinInOrderRowBytes = 512;

/// Bytes of a row: one channel of one image.
static Expr rowBytes(const KernelStages &k) {
  return k.spatial * (k.ioType.bits() / 8);
}

/// Images (or rows of S values) per parallel task.
static Expr imagesPerTask(const KernelStages &k) {
  return unitsPerTask(k.spatial);
}

/// Within one channel: the sum over (s, n) as V lane accumulators per group
/// of images (rfactor over the lanes of s and over image groups); the
/// channel's total adds the partials. The groups are parallel tasks when
/// `parallelGroups` holds (a specialization), serial otherwise.
static void scheduleLanesPerImage(Func f, RDom r, const KernelStages &k,
                                  int V, Expr imagesPerGroup,
                                  Expr parallelGroups) {
  Var c = k.c;
  RVar rxo("rxo"), rxi("rxi"), group("group"), groupInner("group_inner");
  Var lane("lane"), task("task");
  Func partial = f.update()
                     .split(r.y, group, groupInner, imagesPerGroup,
                            TailStrategy::GuardWithIf)
                     .split(r.x, rxo, rxi, V, TailStrategy::GuardWithIf)
                     .rfactor({{rxi, lane}, {group, task}});
  partial.compute_at(f, c).vectorize(lane);
  partial.update().reorder(lane, rxo, groupInner, task).vectorize(lane);
  partial.update().specialize(parallelGroups).parallel(task);
}

/// Short rows (below kShortRowBytes, at least a vector): one pass over the
/// tensor in memory order, image by image as parallel tasks. Each task sums
/// every row of its image (V lane accumulators a row, rfactor) into a
/// partial per (channel, image); the channel's total adds its images'
/// partials. Channel by channel, a task read a row of 784 bytes (14 x 14
/// f32) every 800 KB of a 32x1024x14x14 tensor, too short a run for the
/// prefetchers: the pass waited on memory row by row.
static void scheduleImageByImage(Stage total, RDom r, const KernelStages &k,
                                 int V,
                                 LoopLevel partialsAt = LoopLevel::root()) {
  Var c = k.c, image("image"), lane("lane");
  RVar rxo("rxo"), rxi("rxi");
  Func perImage = total.rfactor(r.y, image);
  perImage.compute_at(partialsAt)
      .parallel(image)
      .vectorize(c, V, TailStrategy::GuardWithIf);
  Func lanes = perImage.update()
                   .split(r.x, rxo, rxi, V, TailStrategy::GuardWithIf)
                   .rfactor(rxi, lane);
  // Each row ends in a sum across its V lanes: as a vector reduction (a
  // tree of shuffles and adds); as a loop over lanes it was V scalar adds
  // of extracted lanes through the stack, as long as a 14 x 14 row's sums.
  perImage.update()
      .reorder(rxi, c, image)
      .parallel(image)
      .atomic()
      .vectorize(rxi);
  lanes.compute_at(perImage, c).vectorize(lane);
  lanes.update().reorder(lane, rxo).vectorize(lane);
  total.reorder(c, r.y).vectorize(c, V, TailStrategy::GuardWithIf);
}

/// Rows short enough (and channels many enough) for the reductions to run
/// image by image (scheduleImageByImage).
static Expr shortRowsWithManyChannels(const KernelStages &k) {
  return rowBytes(k) < kShortRowBytes &&
         k.channels >= kChannelsForFlatReductions;
}

static void scheduleReduction(Func f, RDom r, const KernelStages &k, int V) {
  Var c = k.c;
  f.compute_root();
  f.vectorize(c, V, TailStrategy::GuardWithIf);

  // Short rows: the channel axis is contiguous (s extent 1) or nearly so.
  // With s extent 1 (BatchNorm1d on (N, C)) the tensor is rows of C
  // contiguous values, as channels-last tensors are, and takes their
  // schedule: each task sums a group of rows in memory order. (One task per
  // 16 channels over all rows read 64 bytes a row, 4 KB apart for 1024
  // channels: 4096x1024 f32 train forward measured 5.4x its floor.)
  Stage fewValues = f.update().specialize(k.spatial < V);
  scheduleRowsReduction(fewValues.specialize(k.spatial == 1), r, k, V);
  Var co("co"), ci("ci");
  fewValues.split(c, co, ci, V, TailStrategy::GuardWithIf)
      .reorder(ci, r.x, r.y, co)
      .vectorize(ci)
      .parallel(co);

  scheduleImageByImage(f.update().specialize(shortRowsWithManyChannels(k)), r,
                       k, V);

  // Long rows: channels in parallel, and within a channel V lane
  // accumulators per image, images in parallel too (nested), so that a few
  // channels (C = 3, or 1) with a large N x S still use every core.
  f.update().parallel(c);
  scheduleLanesPerImage(f, r, k, V, imagesPerTask(k),
                        k.channels < kChannelsForFlatReductions);
}

/// Channel-blocked schedule for kernels that reduce and then write a tensor
/// (train forward): one parallel task per block of adjacent channels (one
/// channel where rows are 4 KB or more) computes the block's sums and then
/// its output while the block's N x S slab is still in L2/L3, so x comes
/// from DRAM once.
///
/// Short rows with many channels (shortRowsWithManyChannels) are the
/// exception: a block's rows are runs of a few hundred bytes lying a
/// channel slab apart, too short for the prefetchers. There the block is
/// the whole tensor: its sums are taken image by image in memory order
/// (scheduleImageByImage) and the output is written image by image, each
/// image a parallel task, so x is read twice, in order. Measured on 2 cores
/// of a Zen 4 in docs/performance.md.
///
/// Tried, slower: both passes image by image across a block of channels
/// (one contiguous run of memory per image), with the partial sums at the
/// block: 32x2048x7x7 f32 2.9 -> 2.9-3.7 ms, but 32x64x56x56 1.4 -> 3.5 ms
/// and 64x64x112x112 14 -> 27 ms, on 2 cores of a Zen 4.
static void scheduleBlocked(KernelStages &k, int V) {
  Func out = k.tensorOutputs[0];
  Var s = k.s, c = k.c, n = k.n;
  // The core that summed a channel's images (last to first) then writes
  // the output from the first image, which it read last and still has in
  // its L2. With few channels, groups of images within a channel are tasks
  // too (nested), so that a few channels still use every core. (A parallel
  // loop of one task still costs a trip through the thread pool, about as
  // much as a 14 x 14 channel's work: so the specialization.)
  Expr fewChannels = k.channels < kChannelsForWholeTasks;
  Expr shortRows =
      shortRowsWithManyChannels(k) && rowBytes(k) >= kMinInOrderRowBytes;
  Expr imagesPerChannelTask = select(fewChannels, imagesPerTask(k), k.batch);
  // Blocks of channels whose rows add up to kBlockRowBytes, leaving at
  // least kChannelsForWholeTasks tasks; one block of all channels for short
  // rows.
  // BatchNorm2d/3d on 1 x 1 images (N, C, 1, 1): rows of C contiguous
  // values, as BatchNorm1d on (N, C) has; one block of all channels, summed
  // by the channels-last row reduction and written in groups of rows. In
  // blocks of channels with lanes along s, each value was a vector of one
  // live lane: 4096x1024x1x1 f32 train forward took 175 ms (1.2 ms as
  // BatchNorm1d), 8x1000x1x1 0.125 ms, on 2 cores of a Zen 4.
  Expr rowsOfChannels = k.spatial == 1 && !fewChannels;
  Expr blockChannels =
      select(fewChannels, 1, shortRows || rowsOfChannels, k.channels,
             max(1, min(kBlockRowBytes / max(rowBytes(k), 1),
                        k.channels / kChannelsForWholeTasks)));
  Var group("group"), block("c_block");
  out.reorder(s, n, c)
      .split(n, group, n, imagesPerChannelTask, TailStrategy::GuardWithIf)
      .split(c, block, c, blockChannels, TailStrategy::GuardWithIf)
      .parallel(block);
  Stage nested = out.specialize(fewChannels).parallel(group);
  Stage inOrder = out.specialize(shortRows).reorder(s, c, n, group, block);
  inOrder.parallel(n);
  Var rowTask("row_task");
  out.specialize(rowsOfChannels)
      .reorder(c, s, n, group, block)
      .split(n, rowTask, n, unitsPerTask(k.channels, k.batch),
             TailStrategy::GuardWithIf)
      .parallel(rowTask)
      .vectorize(c, V, TailStrategy::GuardWithIf);
  for (Stage stage : {nested, inOrder, Stage(out)})
    stage.specialize(k.spatial >= V)
        .vectorize(s, V, TailStrategy::ShiftInwards);
  LoopLevel atBlock(out, block);
  for (auto &reduction : k.reductions) {
    Func f = reduction.f;
    f.compute_at(atBlock);
    scheduleRowsReduction(f.update().specialize(rowsOfChannels), reduction.r,
                          k, V, atBlock);
    scheduleImageByImage(f.update().specialize(shortRows), reduction.r, k, V,
                         atBlock);
    scheduleLanesPerImage(f, reduction.r, k, V, imagesPerChannelTask,
                          fewChannels);
  }
  for (Func f : k.channelFuncs)
    f.compute_at(atBlock);
  for (Func f : k.channelOutputs)
    f.split(c, block, c, blockChannels, TailStrategy::GuardWithIf)
        .parallel(block)
        .compute_with(out, block);
}

void scheduleCpuPlanar(KernelStages &k, const Target &target) {
  const int V = target.natural_vector_size(k.ioType);
  Var s = k.s, c = k.c, n = k.n;
  // Measured on the 2-core development VM (64x64x112x112 f32): blocking
  // took train forward from 2.28x to 2.06x a copy (with a fuzzer busy on the
  // other core); one task per channel with the images summed last to first
  // took it to 1.57x (from 1.77x to 2.0x with nested image groups, on a VM
  // with 2 MB of L2 a core). Backward blocked the same way is no faster
  // (2.90x vs 2.86x) and slower on 32x256x14x14 (5.6x vs 4.2x): a channel's
  // x and dy slabs together outgrow the L2. So only train forward is
  // blocked.
  if (k.plan.longRows && k.reducesThenWrites &&
      k.tensorOutputs.size() == 1) {
    scheduleBlocked(k, V);
    return;
  }

  for (auto &reduction : k.reductions)
    scheduleReduction(reduction.f, reduction.r, k, V);

  scheduleChannelStagesAtRoot(k, V);

  for (Func f : k.tensorOutputs) {
    // Rows of S values, grouped so that each task has kValuesPerTask or so
    // (kMaxTasksPerPass tasks at most): one row a task measured 22x a copy
    // on 32x2048x7x7 (49-value rows).
    // A task is a run of channels of one image (images of a task's rows or
    // more, the runs of an image of equal length) or a group of whole
    // images, with channels and images as loop counters: with (c, n) fused
    // into one row index, every row divided that index by C to find its
    // channel's scale (idiv), as long as a 7 x 7 row's work. The image is
    // the inner half of the task index, as in the channels-last outputs.
    Expr rows = unitsPerTask(k.spatial, k.channels * k.batch);
    Expr runChannels = equalRunLength(k.channels, rows);
    Expr imagesPerGroup = max(rows / max(k.channels, 1), 1);
    Var cRun("c_run"), cInner("c_inner"), nGroup("n_group"),
        nInner("n_inner"), rowTask("row_task");
    f.specialize(k.spatial >= V)
        .split(c, cRun, cInner, runChannels, TailStrategy::GuardWithIf)
        .split(n, nGroup, nInner, imagesPerGroup, TailStrategy::GuardWithIf)
        .reorder(s, cInner, nInner, nGroup, cRun)
        .fuse(nGroup, cRun, rowTask)
        .parallel(rowTask)
        .vectorize(s, V, TailStrategy::ShiftInwards);
    // Rows shorter than a vector: vectorized across channels, rows grouped
    // to about kValuesPerTask a task (one row of 1024 values a task cost
    // more in the thread pool than in work). With s extent 1 the channels
    // are contiguous (normrt's tensors are dense), so the specialization
    // makes the loads and stores dense instead of gathers and scatters.
    Var task("task");
    f.reorder(c, s, n)
        .split(n, task, n, unitsPerTask(k.channels * k.spatial, k.batch),
               TailStrategy::GuardWithIf)
        .parallel(task)
        .vectorize(c, V, TailStrategy::GuardWithIf);
    f.specialize(k.spatial == 1);
  }
}

} // namespace schedules
} // namespace normc
