//! quantfarm-train: CPU training of small image classifiers (the CIFAR-10 nets),
//! beside the inference engine and exported through it.
//!
//! - [`ops`]: forward and backward kernels side by side, over [`gemm`].
//! - [`net`]: a network as nodes in topological order; forward/backward passes.
//! - [`arch`]: `mnv2-cifar`, `mnv1-cifar` and the builder they share.
//! - [`trainer`]: the loop (micro-batches on threads, SGD, schedule), [`checkpoint`].
//! - [`export`]: the folded float `.tflite` (through the engine's IR and writer).
//! - [`qat`]: quantization-aware fine-tuning (BN folded, fake-quant) and int8 export.
//! - [`prune`]: magnitude pruning (TFMOT polynomial-decay schedule, block masks), sparsity.
//! - [`cluster`]: weight clustering (k-means, ± centroids per layer), centroid fine-tuning.
//! - [`collab`]: pruning- and cluster-preserving QAT (PQAT, CQAT).
//! - [`import`]: a float `.tflite` written by `export` back into a trainable net.
//! - [`data`]: decoded images in memory, augmentation.
//! - [`rng`]: the deterministic generator every random choice derives from.

pub mod arch;
pub mod checkpoint;
pub mod cluster;
pub mod collab;
pub mod data;
pub mod export;
pub mod gemm;
pub mod import;
pub mod net;
pub mod ops;
pub mod optim;
pub mod prune;
pub mod qat;
pub mod rng;
pub mod trainer;
