//! Debian's headless Chromium on local pages: console messages, screenshots, and the boxes
//! the browser lays the report's timeline labels out in.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Headless Chromium with the flags this machine's closed network needs, on `page`, with
/// a fresh profile in `profile_dir`.
pub fn chromium(profile_dir: &Path, args: &[&str], page: &Path) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs (cargo xtask setup installs it)")
}

/// Console messages Chromium logged for the page.
pub fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect()
}

/// Where tests leave screenshots to look at: target/test-artifacts.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of `page` into `png`, 1280 pixels wide and `height` high.
pub fn screenshot(profile_dir: &Path, page: &Path, png: &Path, height: u32) {
    let _ = std::fs::remove_file(png);
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size=1280,{height}");
    let out = chromium(profile_dir, &[&shot, &size], page);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "not a PNG: {}",
        png.display()
    );
}

/// A label's box as the browser laid it out (CSS pixels).
#[derive(Clone, Debug)]
pub struct LabelBox {
    pub text: String,
    pub class: String,
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// One timeline: its SVG's box and its labels' boxes.
#[derive(Clone, Debug)]
pub struct Figure {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
    pub labels: Vec<LabelBox>,
}

/// Measures every label of every timeline: writes the boxes into the page's DOM as JSON, which
/// `--dump-dom` prints. The report itself has no script: a copy of it gets this one.
const MEASURE: &str = "<script>(function(){var out=[];\
document.querySelectorAll('figure.timeline svg').forEach(function(svg){\
var b=svg.getBoundingClientRect();var labels=[];\
svg.querySelectorAll('text.phase-label,text.tick-label,text.axis-note').forEach(function(t){\
var r=t.getBoundingClientRect();labels.push({text:t.textContent,class:t.getAttribute('class'),\
left:r.left,top:r.top,right:r.right,bottom:r.bottom});});\
out.push({left:b.left,top:b.top,right:b.right,bottom:b.bottom,labels:labels});});\
var pre=document.createElement('pre');pre.id='label-boxes';pre.textContent=JSON.stringify(out);\
document.body.appendChild(pre);})();</script>";

/// The label boxes of every timeline of the page at `page`, measured in Chromium; `work` is a
/// directory for the measured copy and the browser's profile.
pub fn label_boxes(page: &Path, work: &Path) -> Vec<Figure> {
    let html = std::fs::read_to_string(page).unwrap();
    let at = html.rfind("</body>").expect("a page with a body");
    let copy = work.join("measured.html");
    std::fs::write(&copy, format!("{}{MEASURE}{}", &html[..at], &html[at..])).unwrap();
    let out = chromium(&work.join("chrome-measure"), &["--dump-dom"], &copy);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("<pre id=\"label-boxes\">")
        .expect("the boxes were written");
    let json = &dom[start + "<pre id=\"label-boxes\">".len()..];
    let json = &json[..json.find("</pre>").unwrap()];
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let value: serde_json::Value = serde_json::from_str(&json).expect("the boxes are JSON");
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(figure)
        .collect()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

fn figure(v: &serde_json::Value) -> Figure {
    let labels = v["labels"].as_array().expect("labels");
    Figure {
        left: num(v, "left"),
        top: num(v, "top"),
        right: num(v, "right"),
        bottom: num(v, "bottom"),
        labels: labels
            .iter()
            .map(|l| LabelBox {
                text: l["text"].as_str().unwrap_or_default().to_string(),
                class: l["class"].as_str().unwrap_or_default().to_string(),
                left: num(l, "left"),
                top: num(l, "top"),
                right: num(l, "right"),
                bottom: num(l, "bottom"),
            })
            .collect(),
    }
}

/// What is wrong with a timeline's labels: pairs that cover each other, labels outside the
/// SVG, labels the browser gave no size.
pub fn label_problems(f: &Figure) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in f.labels.iter().enumerate() {
        if a.right - a.left < 1.0 || a.bottom - a.top < 1.0 {
            out.push(format!("{:?} has no size", a.text));
        }
        if a.left < f.left - 0.5
            || a.right > f.right + 0.5
            || a.top < f.top - 0.5
            || a.bottom > f.bottom + 0.5
        {
            out.push(format!("{:?} sticks out of its timeline", a.text));
        }
        for b in &f.labels[i + 1..] {
            let cover_x = a.left.max(b.left) < a.right.min(b.right) - 0.5;
            let cover_y = a.top.max(b.top) < a.bottom.min(b.bottom) - 0.5;
            if cover_x && cover_y {
                out.push(format!(
                    "{:?} ({}) covers {:?} ({})",
                    a.text, a.class, b.text, b.class
                ));
            }
        }
    }
    out
}
