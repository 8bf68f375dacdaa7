//! Profiles: the shipped ones load and cite every number; bad ones are reported at
//! `file:line:column`; profiles resolve by name or by path.

mod common;

use quantfarm_devices::{DeviceKind, DeviceProfile, Numerics, ProfileSet, Tag};

const MINIMAL: &str = "\
name: x
kind: dsp
description: d
accepts: [int8]
simulated: true
fallback_cpu: pixel2-bigcore
placement:
  source: HEX-UTILS
  partitioning:
    rule: delegate
    max_partitions: {value: 4, unit: count, tag: P, source: HEX-DEL}
    min_nodes_per_partition: {value: 2, unit: count, tag: P, source: HEX-DEL}
  ops:
    CONV_2D: [dilation_one, {max_stride: {value: 3, unit: count, tag: P, source: HEX-UTILS}}]
    ADD: []
throughput:
  int8:
    peak: {value: 512, unit: GMAC/s, tag: A, source: ANANDTECH}
    utilisation: {value: 0.25, unit: fraction, tag: A, source: HEX-BLOG}
memory_bandwidth: {value: 15, unit: GB/s, tag: A, source: ANANDTECH}
host_link: {value: 5, unit: GB/s, tag: A, source: HEX-DOC}
overheads:
  per_op: {value: 30, unit: us, tag: A, source: HEX-BLOG}
  per_partition: {value: 0.3, unit: ms, tag: A, source: HEX-DEL}
  per_inference: {value: 1.5, unit: ms, tag: A, source: HEX-DEL}
";

fn parse(text: &str) -> Result<DeviceProfile, quantfarm_devices::ProfileError> {
    DeviceProfile::parse(text, "bad.yaml")
}

/// Replace the first occurrence of `from` in MINIMAL and expect an error on `line`.
fn expect_error(from: &str, to: &str, line: u32, words: &str) {
    assert!(MINIMAL.contains(from), "{from}");
    let e = parse(&MINIMAL.replacen(from, to, 1)).expect_err(to);
    assert_eq!(e.line, line, "{e}");
    let s = e.to_string();
    assert!(s.starts_with(&format!("bad.yaml:{line}:")), "{s}");
    assert!(s.contains(words), "{s}");
}

#[test]
fn minimal_profile_parses() {
    let p = parse(MINIMAL).unwrap();
    assert_eq!(p.kind, DeviceKind::Dsp);
    assert!(p.accepts(Numerics::Int8) && !p.accepts(Numerics::Float32));
    assert_eq!(p.quantities().len(), 7);
}

#[test]
fn bad_numbers_name_their_line() {
    // A missing number.
    expect_error(
        "peak: {value: 512, unit: GMAC/s",
        "peak: {unit: GMAC/s",
        18,
        "value",
    );
    // A negative number.
    expect_error(
        "{value: 15, unit: GB/s",
        "{value: -15, unit: GB/s",
        20,
        "-15",
    );
    // A number without a source.
    expect_error(
        "per_op: {value: 30, unit: us, tag: A, source: HEX-BLOG}",
        "per_op: {value: 30, unit: us, tag: A}",
        23,
        "source",
    );
    // A source that is not a key of accelerators.md.
    expect_error("source: HEX-BLOG}", "source: my-guess}", 19, "my-guess");
    // A tag other than P / D / A.
    expect_error("tag: A, source: HEX-DOC", "tag: X, source: HEX-DOC", 21, "");
    // A derived number without its arithmetic.
    expect_error(
        "tag: A, source: HEX-DOC",
        "tag: D, source: HEX-DOC",
        21,
        "note",
    );
    // A unit of the wrong kind.
    expect_error(
        "unit: GB/s, tag: A, source: HEX-DOC",
        "unit: ms, tag: A, source: HEX-DOC",
        21,
        "GB/s",
    );
    // A fraction above 1.
    expect_error(
        "{value: 0.25, unit: fraction",
        "{value: 2.5, unit: fraction",
        19,
        "fraction",
    );
    // Zero where a positive number is needed.
    expect_error(
        "{value: 512, unit: GMAC/s",
        "{value: 0, unit: GMAC/s",
        18,
        "positive",
    );
}

#[test]
fn bad_rules_name_their_line() {
    // An unknown op name in a rule.
    expect_error("    ADD: []", "    ADDD: []", 15, "unknown op 'ADDD'");
    // An unknown limit.
    expect_error("[dilation_one,", "[dilation_two,", 14, "dilation_two");
    // A numeric limit without a source.
    expect_error(
        "{max_stride: {value: 3, unit: count, tag: P, source: HEX-UTILS}}",
        "{max_stride: {value: 3, unit: count, tag: P}}",
        14,
        "source",
    );
    // An unknown partitioning rule.
    expect_error("rule: delegate", "rule: greedy", 10, "");
    // An unknown key.
    expect_error(
        "memory_bandwidth:",
        "memory_bandwith:",
        20,
        "memory_bandwith",
    );
    // A simulated profile without what its latency model reads.
    let e = parse(&MINIMAL.replace(
        "host_link: {value: 5, unit: GB/s, tag: A, source: HEX-DOC}\n",
        "",
    ))
    .unwrap_err();
    assert!(e.to_string().starts_with("bad.yaml:1:"), "{e}");
    assert!(e.message.contains("host_link"), "{e}");
}

#[test]
fn shipped_profiles_load_and_cite_every_number() {
    let set = common::profiles();
    let names: Vec<&str> = set.names().collect();
    for n in [
        "cpu-host",
        "pixel2-bigcore",
        "edgetpu-usb",
        "edgetpu-devboard",
        "gpu-adreno",
        "hexagon-dsp",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(!set.get("cpu-host").unwrap().simulated);
    for p in set.iter().filter(|p| p.simulated) {
        assert!(p.placement.is_some(), "{}", p.name);
        let q = p.quantities();
        assert!(q.len() >= 6, "{}: {} numbers", p.name, q.len());
        for (k, q) in q {
            assert!(!q.source.is_empty(), "{}: {k}", p.name);
            if q.tag == Tag::D {
                assert!(
                    q.note.is_some(),
                    "{}: {k} derived without arithmetic",
                    p.name
                );
            }
            assert!(q.at.starts_with(&p.file), "{}", q.at);
        }
        if p.kind != DeviceKind::Cpu {
            let f = p.fallback_cpu.as_deref().unwrap();
            assert_eq!(set.get(f).unwrap().kind, DeviceKind::Cpu);
        }
    }
    let tpu = set.get("edgetpu-usb").unwrap();
    assert!(tpu.accepts(Numerics::Uint8) && !tpu.accepts(Numerics::Dynamic));
    assert!(!set.get("gpu-adreno").unwrap().accepts(Numerics::Int16x8));
}

#[test]
fn profiles_resolve_by_name_or_path() {
    let set = common::profiles();
    assert_eq!(set.resolve("edgetpu-usb").unwrap().name, "edgetpu-usb");
    let path = common::profiles_dir().join("hexagon-dsp.yaml");
    assert_eq!(
        set.resolve(&path.display().to_string()).unwrap().name,
        "hexagon-dsp"
    );
    let e = set.resolve("tpu-9000").unwrap_err();
    assert!(e.message.contains("unknown device 'tpu-9000'"), "{e}");
    assert!(e.message.contains("edgetpu-devboard"), "{e}");
    let e = set.resolve("/no/such/profile.yaml").unwrap_err();
    assert!(e.to_string().starts_with("/no/such/profile.yaml: "), "{e}");
    // A profile given by path whose fallback CPU is unknown.
    let dir = std::env::temp_dir().join(format!("qf-devices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("x.yaml");
    std::fs::write(
        &f,
        MINIMAL.replace("fallback_cpu: pixel2-bigcore", "fallback_cpu: nope"),
    )
    .unwrap();
    let e = set.resolve(&f.display().to_string()).unwrap_err();
    assert!(e.message.contains("fallback_cpu 'nope'"), "{e}");
    // A binary file is reported without echoing its bytes.
    let b = dir.join("bin.yaml");
    std::fs::write(&b, [0xffu8, 0xfe, 0x00, 0x41]).unwrap();
    let e = set.resolve(&b.display().to_string()).unwrap_err();
    assert!(e.message.contains("not a UTF-8"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn directory_errors() {
    let e = ProfileSet::load_dir("/no/such/dir").unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("/no/such/dir: "), "{e}");
    let dir = std::env::temp_dir().join(format!("qf-devices-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("y.yaml"), MINIMAL).unwrap();
    let e = ProfileSet::load_dir(&dir).unwrap_err();
    assert!(
        e.message.contains("expected the file to be named x.yaml"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
