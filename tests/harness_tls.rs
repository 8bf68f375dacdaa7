//! TLS and mutual TLS between the coordinator, its agents and its clients, with a CA,
//! server and client certificates made at test time (rcgen), plus the errors for
//! plain-http clients, untrusted or missing certificates and bad PEM files.

mod harness_common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use harness_common::*;
use quantfarm_proto::auth::{Client, connect, connect_tls};
use quantfarm_proto::tls::{ClientTls, TlsOptions};
use quantfarm_proto::v1::{GetRunRequest, JobState, ListRunsRequest, RunStatus};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA and the certificates it signed, as PEM files in a directory.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write(path: PathBuf, text: &str) -> PathBuf {
    std::fs::write(&path, text).unwrap();
    path
}

/// `prefix`-ca.pem, -server.{pem,key} (SANs 127.0.0.1, localhost), -client.{pem,key}.
fn make_pki(dir: &Path, prefix: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("quantfarm test CA {prefix}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |names: Vec<String>, cn: &str, eku: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        "coordinator",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_pem, client_key) = leaf(Vec::new(), "agent", ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: write(dir.join(format!("{prefix}-ca.pem")), &ca_cert.pem()),
        server_cert: write(dir.join(format!("{prefix}-server.pem")), &server_pem),
        server_key: write(dir.join(format!("{prefix}-server.key")), &server_key),
        client_cert: write(dir.join(format!("{prefix}-client.pem")), &client_pem),
        client_key: write(dir.join(format!("{prefix}-client.key")), &client_key),
    }
}

fn os(p: &Path) -> &OsStr {
    p.as_os_str()
}

/// Command-line flags from (flag, file) pairs.
fn flags<'a>(pairs: &[(&'static str, &'a Path)]) -> Vec<&'a OsStr> {
    pairs
        .iter()
        .flat_map(|&(f, p)| [OsStr::new(f), os(p)])
        .collect()
}

/// Client flags: trust `ca`, present `id`'s client certificate.
fn client_flags<'a>(ca: &'a Path, id: &'a Pki) -> Vec<&'a OsStr> {
    flags(&[
        ("--tls-ca", ca),
        ("--tls-cert", &id.client_cert),
        ("--tls-key", &id.client_key),
    ])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command failed with exit code 2 and exactly one line of error.
fn assert_one_line_failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Dial over TLS, retrying while the coordinator starts (its log is `log`).
fn tls_client(rt: &tokio::runtime::Runtime, url: &str, tls: &ClientTls, log: &Path) -> Client {
    let t = Instant::now();
    loop {
        let err = match rt.block_on(connect_tls(url, TOKEN, tls)) {
            Ok(mut c) => match rt.block_on(c.list_runs(ListRunsRequest {})) {
                Ok(_) => return c,
                Err(e) => format!("{e:?}"),
            },
            Err(e) => e,
        };
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "coordinator did not come up: {err}\ncoordinator log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for `run` to finish; on a timeout, show the logs in `dir`.
fn wait_finished(rt: &tokio::runtime::Runtime, c: &mut Client, run: &str, dir: &Path) -> RunStatus {
    let t = Instant::now();
    loop {
        let st = rt
            .block_on(c.get_run(GetRunRequest { run_id: run.into() }))
            .unwrap()
            .into_inner();
        if st.finished {
            return st;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let mut logs = String::new();
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    logs += &format!("--- {}\n{text}\n", e.path().display());
                }
            }
            panic!("timed out: {st:#?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(url: &str, tls: &[&OsStr]) -> Output {
    command()
        .args(["status", "--json", "--coordinator", url])
        .args(tls)
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn harness_tls_remote_run_and_plain_client_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "farm");
    let other = make_pki(dir.path(), "other");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _coord = spawn_coordinator_with(
        dir.path(),
        port,
        "tls",
        &flags(&[
            ("--tls-cert", &pki.server_cert),
            ("--tls-key", &pki.server_key),
        ]),
    );
    let _agent = spawn_agent_with(
        dir.path(),
        &url,
        "tls-agent",
        &flags(&[("--tls-ca", &pki.ca)]),
    );
    let rt = runtime();
    let tls = ClientTls::load(
        &url,
        &TlsOptions {
            ca: Some(pki.ca.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let log = dir.path().join("coordinator-tls.log");
    let _ = tls_client(&rt, &url, &tls, &log); // listening

    // (a) A scenario run through the TLS coordinator and its TLS agent.
    let sc = dir.path().join("tls.yaml");
    std::fs::write(
        &sc,
        "name: tls\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [size, latency]\nlatency: {warmup: 0, runs: 1, threads: 1}\n",
    )
    .unwrap();
    let out = command()
        .arg("run")
        .arg(&sc)
        .args(["--coordinator", &url, "--run-id", "tls-1"])
        .arg("--tls-ca")
        .arg(&pki.ca)
        .arg("--token-file")
        .arg(token_file(dir.path()))
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("reports/tls-1/results.csv")).unwrap();
    assert!(csv.contains("tls-agent"), "{csv}");

    // `status` over TLS, the CA from the environment this time.
    let out = command()
        .args(["status", "tls-1", "--json", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .env("QUANTFARM_TLS_CA", &pki.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finished"], true);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3);
    assert!(
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "succeeded"),
        "{v}"
    );

    // (c) A plain-http client of the TLS coordinator fails cleanly.
    let plain = format!("http://127.0.0.1:{port}");
    let err = assert_one_line_failure(&status(&plain, &[]));
    assert!(err.contains(&plain), "{err}");
    let refused = match rt.block_on(connect(&plain, TOKEN)) {
        Err(e) => e,
        Ok(mut c) => rt
            .block_on(c.list_runs(ListRunsRequest {}))
            .unwrap_err()
            .to_string(),
    };
    assert!(!refused.is_empty());

    // An https URL without a CA says which flag is missing.
    let err = assert_one_line_failure(&status(&url, &[]));
    assert!(err.contains("--tls-ca"), "{err}");
    // A coordinator certificate from a CA we do not trust.
    let err = assert_one_line_failure(&status(&url, &flags(&[("--tls-ca", &other.ca)])));
    assert!(err.contains("certificate"), "{err}");
    // TLS files with an http:// URL: refused rather than silently ignored.
    let err = assert_one_line_failure(&status(&plain, &flags(&[("--tls-ca", &pki.ca)])));
    assert!(err.contains("not https://"), "{err}");

    // The coordinator is still serving after the refused handshakes.
    let mut c = tls_client(&rt, &url, &tls, &log);
    rt.block_on(c.list_runs(ListRunsRequest {})).unwrap();
}

#[test]
fn harness_mtls_needs_a_client_certificate_from_the_ca() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "farm");
    let other = make_pki(dir.path(), "other");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _coord = spawn_coordinator_with(
        dir.path(),
        port,
        "mtls",
        &flags(&[
            ("--tls-cert", &pki.server_cert),
            ("--tls-key", &pki.server_key),
            ("--tls-client-ca", &pki.ca),
        ]),
    );
    // An agent with a client certificate signed by the CA.
    let _agent = spawn_agent_with(dir.path(), &url, "mtls-agent", &client_flags(&pki.ca, &pki));
    // An agent without one never gets work (nor registers).
    let _bare_agent = spawn_agent_with(
        dir.path(),
        &url,
        "bare-agent",
        &flags(&[("--tls-ca", &pki.ca)]),
    );
    let rt = runtime();
    let tls = ClientTls::load(
        &url,
        &TlsOptions {
            ca: Some(pki.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.client_key.clone()),
        },
    )
    .unwrap();
    let log = dir.path().join("coordinator-mtls.log");
    let mut c = tls_client(&rt, &url, &tls, &log);
    submit(&rt, &mut c, "m", synthetic_jobs("m", 4, 10));
    let st = wait_finished(&rt, &mut c, "m", dir.path());
    for j in &st.jobs {
        assert_eq!(j.state, JobState::Succeeded as i32, "{j:#?}");
        assert_eq!(j.result.as_ref().unwrap().agent, "mtls-agent");
    }

    // The CLI with the client certificate.
    let with_cert = client_flags(&pki.ca, &pki);
    let out = status(&url, &with_cert);
    assert!(out.status.success(), "{}", stderr(&out));

    // Without a client certificate, or with one from another CA: refused.
    let err = assert_one_line_failure(&status(&url, &flags(&[("--tls-ca", &pki.ca)])));
    assert!(err.contains("certificate"), "{err}");
    let err = assert_one_line_failure(&status(&url, &client_flags(&pki.ca, &other)));
    assert!(err.contains("certificate"), "{err}");
    // --tls-cert without --tls-key.
    let err = assert_one_line_failure(&status(
        &url,
        &flags(&[("--tls-ca", &pki.ca), ("--tls-cert", &pki.client_cert)]),
    ));
    assert!(err.contains("--tls-key"), "{err}");

    // Over gRPC directly, too.
    let bare = ClientTls::load(
        &url,
        &TlsOptions {
            ca: Some(pki.ca.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    match rt.block_on(connect_tls(&url, TOKEN, &bare)) {
        Err(_) => {}
        Ok(mut c) => {
            rt.block_on(c.list_runs(ListRunsRequest {})).unwrap_err();
        }
    }
    // The agent without a certificate never registered: every job went to the other.
    let log = std::fs::read_to_string(dir.path().join("bare-agent.log")).unwrap_or_default();
    assert!(log.contains("certificate"), "{log}");
}

#[test]
fn harness_tls_bad_pem_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "farm");
    let garbage = write(dir.path().join("garbage.pem"), "hello, not a certificate\n");
    let truncated = write(
        dir.path().join("truncated.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    let missing = dir.path().join("missing.pem");
    let coordinator = |cert: &Path, key: &Path, ca: Option<&Path>| {
        let mut c = command();
        c.args(["coordinator", "--listen", "127.0.0.1:0"])
            .arg("--db")
            .arg(dir.path().join("db"))
            .arg("--artifacts")
            .arg(dir.path().join("artifacts"))
            .arg("--token-file")
            .arg(token_file(dir.path()))
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
        if let Some(ca) = ca {
            c.arg("--tls-client-ca").arg(ca);
        }
        c.output().unwrap()
    };
    let name = |p: &Path| p.display().to_string();

    // Server side: the certificate, the key, the client CA; missing, garbage, broken.
    let err = assert_one_line_failure(&coordinator(&missing, &pki.server_key, None));
    assert!(
        err.contains(&format!("{}: cannot read", name(&missing))),
        "{err}"
    );
    let err = assert_one_line_failure(&coordinator(&garbage, &pki.server_key, None));
    assert!(
        err.contains(&format!("{}: no PEM certificate", name(&garbage))),
        "{err}"
    );
    let err = assert_one_line_failure(&coordinator(&truncated, &pki.server_key, None));
    assert!(
        err.contains(&format!("{}: bad PEM", name(&truncated))),
        "{err}"
    );
    let err = assert_one_line_failure(&coordinator(&pki.server_cert, &garbage, None));
    assert!(
        err.contains(&format!("{}: no PEM private key", name(&garbage))),
        "{err}"
    );
    // A certificate given as the key.
    let err = assert_one_line_failure(&coordinator(&pki.server_cert, &pki.server_cert, None));
    assert!(err.contains(&name(&pki.server_cert)), "{err}");
    // A key that is not the certificate's.
    let err = assert_one_line_failure(&coordinator(&pki.server_cert, &pki.client_key, None));
    assert!(err.contains(&name(&pki.client_key)), "{err}");
    assert!(err.contains("does not match"), "{err}");
    let err = assert_one_line_failure(&coordinator(
        &pki.server_cert,
        &pki.server_key,
        Some(&garbage),
    ));
    assert!(
        err.contains(&format!("{}: no PEM certificate", name(&garbage))),
        "{err}"
    );
    // --tls-cert alone.
    let out = command()
        .args(["coordinator", "--db", "x", "--artifacts", "y", "--tls-cert"])
        .arg(&pki.server_cert)
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = assert_one_line_failure(&out);
    assert!(err.contains("--tls-key"), "{err}");
    // Nothing was created by the failed starts.
    assert!(!dir.path().join("db").exists());

    // Client side: agent, status and run name the file before dialing anything.
    let url = "https://127.0.0.1:9";
    for sub in [
        vec!["status", "--coordinator", url],
        vec!["cancel", "r", "--coordinator", url],
    ] {
        let out = command()
            .args(&sub)
            .arg("--tls-ca")
            .arg(&garbage)
            .env("QUANTFARM_TOKEN", TOKEN)
            .output()
            .unwrap();
        let err = assert_one_line_failure(&out);
        assert!(
            err.contains(&format!("{}: no PEM certificate", name(&garbage))),
            "{err}"
        );
    }
    // A missing client key, and a key that is not the client certificate's.
    let missing_key = format!("{}: cannot read", name(&missing));
    for (key, want) in [
        (&missing, missing_key.as_str()),
        (&pki.server_key, "does not match"),
    ] {
        let out = command()
            .args(["agent", "--coordinator", url, "--tls-ca"])
            .arg(&pki.ca)
            .arg("--tls-cert")
            .arg(&pki.client_cert)
            .arg("--tls-key")
            .arg(key)
            .env("QUANTFARM_TOKEN", TOKEN)
            .output()
            .unwrap();
        let err = assert_one_line_failure(&out);
        assert!(err.contains(want), "{err}");
    }
    let sc = dir.path().join("s.yaml");
    std::fs::write(
        &sc,
        "name: s\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [size]\n",
    )
    .unwrap();
    let out = command()
        .arg("run")
        .arg(&sc)
        .args(["--coordinator", url])
        .arg("--tls-ca")
        .arg(&truncated)
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains(&format!("{}: bad PEM", name(&truncated))),
        "{err}"
    );
}
