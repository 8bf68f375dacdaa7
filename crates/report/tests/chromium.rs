//! The HTML report in a real browser: headless Chromium opens `index.html` from disk,
//! logs no console message (no script error, no blocked request: the page's CSP would
//! report any fetch), and its screenshots are not blank and show the charts.
//!
//! Skipped with a note when no Chromium is installed, unless
//! `QUANTFARM_REQUIRE_CHROMIUM=1` (CI sets it and installs Debian's `chromium`).
//! `QUANTFARM_CHROMIUM` names the browser binary if it is not on the PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quantfarm_report::{Options, build, synthetic};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUANTFARM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

fn browser_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var("QUANTFARM_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("QUANTFARM_REQUIRE_CHROMIUM=1 but no chromium on the PATH");
        }
        eprintln!("note: chromium not found: the HTML rendering test is skipped");
    }
    found
}

/// A screenshot of `page` at `width` × `height` and every console message logged.
fn render(
    browser: &Path,
    page: &Path,
    width: u32,
    height: u32,
    scratch: &Path,
) -> (RgbImage, Vec<String>) {
    let shot = scratch.join(format!("shot-{width}x{height}.png"));
    let _ = std::fs::remove_file(&shot);
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=1",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = reader.join().unwrap();
    // Chromium logs every console message (errors, CSP violations) as `...:CONSOLE...`.
    let console: Vec<String> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    let image = read_png(&shot).unwrap_or_else(|e| panic!("{}: {e}\n{log}", shot.display()));
    (image, console)
}

struct RgbImage {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn read_png(p: &Path) -> Result<RgbImage, String> {
    let file = std::fs::File::open(p).map_err(|e| format!("no screenshot: {e}"))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("image too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| match channels {
            1 | 2 => [c[0], c[0], c[0]],
            _ => [c[0], c[1], c[2]],
        })
        .collect();
    Ok(RgbImage {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    })
}

impl RgbImage {
    /// Share of pixels that are not (nearly) white.
    fn ink(&self) -> f64 {
        let dark = self
            .rgb
            .iter()
            .filter(|p| p.iter().any(|&v| v < 235))
            .count();
        dark as f64 / self.rgb.len() as f64
    }

    /// Pixels of exactly this colour.
    fn count(&self, c: [u8; 3]) -> usize {
        self.rgb.iter().filter(|p| **p == c).count()
    }
}

/// The first series colour of the charts (the page's CSS never uses it).
const CHART_BLUE: [u8; 3] = [31, 119, 180];

#[test]
fn report_renders_in_headless_chromium_without_console_messages() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = synthetic::run("chromium", 0, 1.0, 0.0);
    let old: Vec<_> = (1..=2u64)
        .map(|i| {
            let mut r = synthetic::run(&format!("old{i}"), 0, 1.0 + 0.1 * i as f64, 0.0);
            r.created_unix -= 86_400 * (3 - i);
            r
        })
        .collect();
    let report = build(&run, old.last(), &old, &Options::default()).unwrap();
    let out = dir.path().join("report");
    report.write(&run, &out).unwrap();
    let page = out.join("index.html");

    // The detector itself: a page that breaks the rules is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        report.html.replacen(
            "<body>",
            "<body><img src=\"http://example.invalid/x.png\">",
            1,
        ),
    )
    .unwrap();
    let (_, console) = render(&browser, &bad, 800, 600, dir.path());
    assert!(
        !console.is_empty(),
        "a blocked external image was not reported"
    );

    // The page's top: headings and tables.
    let (top, console) = render(&browser, &page, 1400, 1000, dir.path());
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    assert_eq!((top.width, top.height), (1400, 1000));
    let ink = top.ink();
    assert!(
        ink > 0.02,
        "the top of the page is blank ({:.4} of pixels inked)",
        ink
    );

    // The whole page: the charts are drawn (their colours are on screen).
    let (full, console) = render(&browser, &page, 1400, 12000, dir.path());
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let blue = full.count(CHART_BLUE);
    eprintln!(
        "chromium: top {:.1}% inked, {blue} chart-blue pixels on the whole page",
        100.0 * ink
    );
    assert!(
        blue > 2000,
        "no chart visible: {blue} pixels of the charts' blue"
    );
}
