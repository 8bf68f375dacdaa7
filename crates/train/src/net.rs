//! A network as a list of nodes in topological order (each reads earlier nodes'
//! outputs), its parameters and batch-norm running statistics, and the training
//! forward/backward pass over one micro-batch.

use crate::ops::{Geom, bn, conv, dense, depthwise, loss, pool};

/// What a node computes. Parameter fields index [`Net::params`].
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The image batch, `[N, H, W, C]` floats.
    Input,
    /// Conv without bias, `k × k`, SAME padding; weights `[k·k·Cin, Cout]`.
    Conv { w: usize, k: usize, stride: usize },
    /// Depthwise conv (multiplier 1) without bias; weights `[k·k, C]`.
    Depthwise { w: usize, k: usize, stride: usize },
    /// Batch norm + activation; `stat` indexes the running statistics.
    BnAct {
        gamma: usize,
        beta: usize,
        stat: usize,
        act: bn::Act,
    },
    /// Residual sum of two inputs.
    Add,
    /// Elementwise product of two inputs of one shape (a multiplicative gate).
    Mul,
    /// Global average pool to `[N, 1, 1, C]`.
    Gap,
    /// Fully connected with bias; weights `[Cin, Cout]`.
    Dense { w: usize, b: usize },
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub inputs: Vec<usize>,
    /// Per-image output shape `[H, W, C]`.
    pub shape: [usize; 3],
}

impl Node {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub name: String,
    pub len: usize,
    /// Weight decay applies (conv/dense weights; not BN or biases).
    pub decay: bool,
}

/// Architecture: nodes and parameter descriptions (no values).
#[derive(Debug, Clone)]
pub struct Net {
    pub name: String,
    pub nodes: Vec<Node>,
    pub params: Vec<ParamInfo>,
    /// Channels of each batch norm's running statistics.
    pub stats: Vec<usize>,
}

/// Values: parameters and BN running statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub params: Vec<Vec<f32>>,
    pub running_mean: Vec<Vec<f32>>,
    pub running_var: Vec<Vec<f32>>,
}

/// Reusable buffers: the same tensor sizes come back every step, and fresh large
/// allocations cost page faults (and a kernel lock both threads contend on).
#[derive(Default)]
pub struct Pool {
    free: Vec<Vec<f32>>,
}

impl Pool {
    /// A zeroed buffer of `len` floats (the smallest free one that fits).
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match best {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        v.clear();
        v.resize(len, 0.0);
        v
    }

    /// A buffer of `len` floats whose contents are unspecified (old values): for
    /// outputs every element of which the kernel writes.
    pub fn take_dirty(&mut self, len: usize) -> Vec<f32> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match best {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        v
    }

    pub fn give(&mut self, v: Vec<f32>) {
        if v.capacity() > 0 {
            self.free.push(v);
        }
    }
}

/// What a training forward pass keeps for its backward pass.
pub struct Tape {
    pub n: usize,
    pub outs: Vec<Vec<f32>>,
    /// Batch statistics of each BN node (None for other nodes).
    pub batch: Vec<Option<bn::BatchStats>>,
}

impl Net {
    pub fn input_shape(&self) -> [usize; 3] {
        self.nodes[0].shape
    }
    pub fn classes(&self) -> usize {
        self.nodes.last().map_or(0, |n| n.shape[2])
    }

    /// Multiply-accumulates of one image's forward pass.
    pub fn macs(&self) -> u64 {
        let mut total = 0u64;
        for n in &self.nodes {
            let [h, w, c] = n.shape;
            let cin = n.inputs.first().map_or(0, |&i| self.nodes[i].shape[2]);
            total += match n.kind {
                Kind::Conv { k, .. } => (h * w * c * k * k * cin) as u64,
                Kind::Depthwise { k, .. } => (h * w * c * k * k) as u64,
                Kind::Dense { .. } => (c * cin) as u64,
                _ => 0,
            };
        }
        total
    }

    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.len).sum()
    }

    fn geom(&self, node: &Node, n: usize) -> Geom {
        let [h, w, c] = self.nodes[node.inputs[0]].shape;
        let (k, stride) = match node.kind {
            Kind::Conv { k, stride, .. } | Kind::Depthwise { k, stride, .. } => (k, stride),
            _ => (1, 1),
        };
        Geom::same(n, h, w, c, k, stride)
    }

    /// Forward pass over `n` images `x` (`[n, H, W, C]`). Training mode normalises
    /// with batch statistics and keeps them; inference uses the running ones.
    pub fn forward(
        &self,
        wts: &Weights,
        x: Vec<f32>,
        n: usize,
        train: bool,
        pool: &mut Pool,
    ) -> Tape {
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(self.nodes.len());
        let mut batch = Vec::with_capacity(self.nodes.len());
        let mut col = Vec::new();
        let mut x = Some(x);
        for node in &self.nodes {
            let mut y = if node.kind == Kind::Input {
                Vec::new()
            } else {
                // Every forward kernel writes all of its output.
                pool.take_dirty(n * node.len())
            };
            let mut st = None;
            let input = |i: usize| -> &[f32] { &outs[node.inputs[i]] };
            match node.kind {
                Kind::Input => y = x.take().expect("one input node"),
                Kind::Conv { w, .. } => {
                    let g = self.geom(node, n);
                    conv::forward(
                        &g,
                        node.shape[2],
                        input(0),
                        &wts.params[w],
                        &mut y,
                        &mut col,
                    )
                }
                Kind::Depthwise { w, .. } => {
                    let g = self.geom(node, n);
                    depthwise::forward(&g, input(0), &wts.params[w], &mut y)
                }
                Kind::BnAct {
                    gamma,
                    beta,
                    stat,
                    act,
                } => {
                    let c = node.shape[2];
                    let m = n * node.len() / c;
                    let (gm, bt) = (&wts.params[gamma], &wts.params[beta]);
                    if train {
                        let s = bn::batch_stats(m, c, input(0));
                        bn::forward(m, c, input(0), gm, bt, &s.mean, &s.var, act, &mut y);
                        st = Some(s);
                    } else {
                        let (mu, var) = (&wts.running_mean[stat], &wts.running_var[stat]);
                        bn::forward(m, c, input(0), gm, bt, mu, var, act, &mut y);
                    }
                }
                Kind::Add => pool::add_forward(input(0), input(1), &mut y),
                Kind::Mul => pool::mul_forward(input(0), input(1), &mut y),
                Kind::Gap => {
                    let [h, w, c] = self.nodes[node.inputs[0]].shape;
                    pool::gap_forward(n, h * w, c, input(0), &mut y)
                }
                Kind::Dense { w, b } => {
                    let cin = self.nodes[node.inputs[0]].len();
                    let (wv, bv) = (&wts.params[w], &wts.params[b]);
                    dense::forward(n, cin, node.shape[2], input(0), wv, bv, &mut y)
                }
            }
            outs.push(y);
            batch.push(st);
        }
        Tape { n, outs, batch }
    }

    /// Logits of the last node.
    pub fn logits<'t>(&self, tape: &'t Tape) -> &'t [f32] {
        tape.outs.last().map_or(&[], |v| v.as_slice())
    }

    /// Backward pass from `dlogits`; returns the gradient of every parameter.
    pub fn backward(
        &self,
        wts: &Weights,
        tape: Tape,
        dlogits: Vec<f32>,
        pool: &mut Pool,
    ) -> Vec<Vec<f32>> {
        let n = tape.n;
        let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0f32; p.len]).collect();
        let mut d: Vec<Option<Vec<f32>>> = vec![None; self.nodes.len()];
        *d.last_mut().expect("non-empty net") = Some(dlogits);
        let mut outs = tape.outs;
        let mut col = Vec::new();
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let Some(dy) = d[i].take() else { continue };
            // This node's output is no longer needed (consumers are later nodes).
            pool.give(std::mem::take(&mut outs[i]));
            let grad_in = |d: &mut [Option<Vec<f32>>], pool: &mut Pool, j: usize| -> Vec<f32> {
                d[j].take()
                    .unwrap_or_else(|| pool.take(n * self.nodes[j].len()))
            };
            match node.kind {
                Kind::Input => {}
                Kind::Conv { w, .. } => {
                    let g = self.geom(node, n);
                    let src = node.inputs[0];
                    // The input image needs no gradient.
                    let mut dx = (src != 0).then(|| grad_in(&mut d, pool, src));
                    conv::backward(
                        &g,
                        node.shape[2],
                        &outs[src],
                        &wts.params[w],
                        &dy,
                        dx.as_deref_mut(),
                        &mut grads[w],
                        &mut col,
                    );
                    if dx.is_some() {
                        d[src] = dx;
                    }
                }
                Kind::Depthwise { w, .. } => {
                    let g = self.geom(node, n);
                    let src = node.inputs[0];
                    let mut dx = grad_in(&mut d, pool, src);
                    depthwise::backward(
                        &g,
                        &outs[src],
                        &wts.params[w],
                        &dy,
                        &mut dx,
                        &mut grads[w],
                    );
                    d[src] = Some(dx);
                }
                Kind::BnAct {
                    gamma, beta, act, ..
                } => {
                    let c = node.shape[2];
                    let m = n * node.len() / c;
                    let src = node.inputs[0];
                    let st = tape.batch[i].as_ref().expect("training tape");
                    let mut dx = grad_in(&mut d, pool, src);
                    let (mut dg, mut db) = (vec![0f32; c], vec![0f32; c]);
                    bn::backward(
                        m,
                        c,
                        &outs[src],
                        &wts.params[gamma],
                        &wts.params[beta],
                        st,
                        act,
                        &dy,
                        &mut dx,
                        &mut dg,
                        &mut db,
                    );
                    add_into(&mut grads[gamma], &dg);
                    add_into(&mut grads[beta], &db);
                    d[src] = Some(dx);
                }
                Kind::Add => {
                    for &src in &node.inputs {
                        match &mut d[src] {
                            Some(acc) => add_into(acc, &dy),
                            slot => {
                                let mut v = pool.take(dy.len());
                                v.copy_from_slice(&dy);
                                *slot = Some(v);
                            }
                        }
                    }
                }
                Kind::Mul => {
                    // d(a·b)/da = b and d(a·b)/db = a (both when a and b are one node).
                    let (a, b) = (node.inputs[0], node.inputs[1]);
                    let mut da = grad_in(&mut d, pool, a);
                    pool::mul_backward(&dy, &outs[b], &mut da);
                    d[a] = Some(da);
                    let mut db = grad_in(&mut d, pool, b);
                    pool::mul_backward(&dy, &outs[a], &mut db);
                    d[b] = Some(db);
                }
                Kind::Gap => {
                    let src = node.inputs[0];
                    let [h, w, c] = self.nodes[src].shape;
                    let mut dx = grad_in(&mut d, pool, src);
                    pool::gap_backward(n, h * w, c, &dy, &mut dx);
                    d[src] = Some(dx);
                }
                Kind::Dense { w, b } => {
                    let src = node.inputs[0];
                    let cin = self.nodes[src].len();
                    let mut dx = grad_in(&mut d, pool, src);
                    let (gw, gb) = two_mut(&mut grads, w, b);
                    dense::backward(
                        n,
                        cin,
                        node.shape[2],
                        &outs[src],
                        &wts.params[w],
                        &dy,
                        &mut dx,
                        gw,
                        gb,
                    );
                    d[src] = Some(dx);
                }
            }
            pool.give(dy);
        }
        // outs[0] is the caller's input batch, not a pool buffer.
        for v in outs.into_iter().skip(1).chain(d.into_iter().flatten()) {
            pool.give(v);
        }
        grads
    }

    /// Loss, top-1 hits and parameter gradients of one micro-batch; `scale`
    /// multiplies the gradients (1 / global batch size for a mean loss).
    pub fn train_step(
        &self,
        wts: &Weights,
        x: Vec<f32>,
        labels: &[u8],
        scale: f32,
        pool: &mut Pool,
    ) -> (f64, usize, Vec<Vec<f32>>, Vec<Option<bn::BatchStats>>) {
        let n = labels.len();
        let mut tape = self.forward(wts, x, n, true, pool);
        let k = self.classes();
        let mut dl = pool.take(n * k);
        let (l, correct) = loss::softmax_xent(n, k, self.logits(&tape), labels, scale, &mut dl);
        let stats = std::mem::take(&mut tape.batch);
        let bn_stats = stats.clone();
        let tape = Tape {
            batch: stats,
            ..tape
        };
        let grads = self.backward(wts, tape, dl, pool);
        (l, correct, grads, bn_stats)
    }
}

fn add_into(acc: &mut [f32], v: &[f32]) {
    acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
