//! Arbitrary bytes into the TFLite reader: it must return Ok or Err, never panic.
//! A model that reads must also write, the written bytes must read back, and
//! writing that again must give the same bytes (compared as bytes rather than
//! with `==`, which NaN scales from random input would fail).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantfarm_engine::tflite::{read_model, write_model};

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = read_model(data) {
        let bytes = write_model(&model).expect("a model that was read must write");
        let again = read_model(&bytes).expect("a written model must read back");
        let bytes2 = write_model(&again).expect("a re-read model must write");
        assert!(bytes == bytes2, "read -> write -> read changed the model");
    }
});
