//! The exported float model (BN folded, activations fused) computes what the
//! training graph computes in inference mode: same probabilities within float
//! rounding, in our interpreter, after a write/read round trip.

use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::tflite::{read_model, write_model};
use quantfarm_train::arch;
use quantfarm_train::export::to_model;
use quantfarm_train::import::from_model;
use quantfarm_train::net::{Kind, Pool};
use quantfarm_train::rng::Rng;

#[test]
fn exported_models_match_the_training_graph() {
    for name in arch::ARCHS {
        let net = arch::build(name).unwrap();
        let mut w = arch::init_weights(&net, 3);
        // Non-trivial BN parameters and statistics, as after training.
        let mut r = Rng::new(17);
        for node in &net.nodes {
            if let Kind::BnAct {
                gamma, beta, stat, ..
            } = node.kind
            {
                w.params[gamma]
                    .iter_mut()
                    .for_each(|g| *g = 0.5 + r.unit() as f32);
                w.params[beta]
                    .iter_mut()
                    .for_each(|b| *b = 0.2 * r.normal());
                w.running_mean[stat]
                    .iter_mut()
                    .for_each(|m| *m = 0.3 * r.normal());
                w.running_var[stat]
                    .iter_mut()
                    .for_each(|v| *v = 0.5 + r.unit() as f32);
            }
        }
        let bytes = write_model(&to_model(&net, &w).unwrap()).unwrap();
        let model = read_model(&bytes).unwrap();
        // Read back into a trainable net: same outputs, same file when exported again.
        let (net2, w2) = from_model(&model).unwrap();
        assert_eq!(net2.param_count(), net.param_count());
        let again = to_model(&net2, &w2).unwrap();
        for (a, b) in again.main().tensors.iter().zip(&model.main().tensors) {
            assert_eq!(
                a.data, b.data,
                "{name}: tensor {} changed in the round trip",
                a.name
            );
        }
        let mut it = Interpreter::new(&model, InterpreterOptions::default()).unwrap();
        assert_eq!(it.inputs()[0].shape, vec![1, 32, 32, 3]);
        let n = 3;
        let x: Vec<f32> = (0..n * 3072).map(|_| r.unit() as f32).collect();
        let tape = net.forward(&w, x.clone(), n, false, &mut Pool::default());
        let logits = net.logits(&tape);
        for b in 0..n {
            it.set_input_f32(0, &x[b * 3072..(b + 1) * 3072]).unwrap();
            it.invoke();
            let got = it.output_f32(0).unwrap();
            let z = &logits[b * 10..(b + 1) * 10];
            let mx = z.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - mx).exp()).collect();
            let s: f32 = e.iter().sum();
            for (k, (g, want)) in got.iter().zip(e.iter().map(|v| v / s)).enumerate() {
                assert!(
                    (g - want).abs() < 1e-4,
                    "{name} image {b} class {k}: {g} vs {want}"
                );
            }
        }
    }
}
