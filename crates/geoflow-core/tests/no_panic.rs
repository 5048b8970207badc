//! The parsers must never panic, overflow the stack or allocate without bound, whatever the
//! input bytes.
//!
//! Every input goes the whole way a load takes it: [`GeoJsonReader`] frames it (with the
//! default limits and with small ones, in one read and in tiny reads), every framed feature is
//! observed for the schema, and then processed under each of the three policies. The WKB
//! reader, which reads stored geometries back, gets arbitrary bytes and mutated WKB. Panics are
//! caught per stage and reported with the input, also those that the core catches itself; a
//! watchdog aborts with the input if one case runs far too long; a counting allocator bounds
//! the memory of the large regression inputs.
//!
//! Property tests run a moderate number of cases by default (`PROPTEST_CASES` raises it, e.g.
//! `PROPTEST_CASES=50000 cargo test --release -p geoflow-core --test no_panic`;
//! `NO_PANIC_CASE_LIMIT_SECS` sets the watchdog, 120 s by default). Each run draws a new seed
//! and prints it; `PROPTEST_RNG_SEED` repeats a run. Under `CI` the seed is fixed, so that a
//! build's verdict does not depend on the draw: exploring is for runs by hand.
//!
//! A failure that cannot be fixed at once gets a minimised, `#[ignore]`d reproducer below and
//! an entry in [`KNOWN`]: the property tests tolerate it (and say how often they met it) and
//! keep hunting for new ones. `NO_PANIC_STRICT=1` makes every failure fail. Once it is fixed,
//! the entry goes and the reproducer becomes one of the regression tests at the end of this
//! file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use geoflow_core::crs::CrsTransform;
use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::process::{observe_schema, Processed, Processor};
use geoflow_core::reader::{GeoJsonReader, RawFeature, ReaderOptions};
use geoflow_core::report::{Action, Policy, ProblemCode};
use geoflow_core::row::{EncodedGeometry, GeometryKind, Row};
use geoflow_core::schema::{FieldType, SchemaBuilder};
use geoflow_core::value::PropValue;
use geoflow_core::wkb::{self, Header, Part, Reason, Visitor, MAX_DEPTH};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------------
// Memory accounting: bytes allocated and not yet freed by the current thread, and their peak.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak of bytes it held at once on this thread.
fn peak_memory<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

// ---------------------------------------------------------------------------------------------
// Panic capture and the watchdog.

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn strict() -> bool {
    std::env::var_os("NO_PANIC_STRICT").is_some_and(|v| v != "0" && !v.is_empty())
}

fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let message = info.payload_as_str().unwrap_or("<non-string panic payload>").to_string();
            let quiet = !strict() && known_panic(&location, &message).is_some();
            let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some((location, message)));
            if !quiet {
                default(info);
            }
        }));
        thread::spawn(watchdog);
    });
}

/// Longest a single case may take before the watchdog aborts the run, printing the input.
fn case_limit() -> Duration {
    let secs = std::env::var("NO_PANIC_CASE_LIMIT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    Duration::from_secs(secs)
}

fn running() -> &'static Mutex<HashMap<ThreadId, (Instant, String)>> {
    static RUNNING: OnceLock<Mutex<HashMap<ThreadId, (Instant, String)>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

fn watchdog() {
    let limit = case_limit();
    loop {
        thread::sleep(Duration::from_millis(500));
        let running = running().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((started, what)) = running.values().find(|(started, _)| started.elapsed() > limit) {
            eprintln!("\nno_panic watchdog: one case has run for {:?} (limit {limit:?}): a hang or super-linear work on\n{what}", started.elapsed());
            std::process::abort();
        }
    }
}

/// Marks the current thread busy with `what` until dropped.
struct Busy;

impl Busy {
    fn new(what: impl FnOnce() -> String) -> Busy {
        install_hooks();
        running().lock().unwrap_or_else(|e| e.into_inner()).insert(thread::current().id(), (Instant::now(), what()));
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        running().lock().unwrap_or_else(|e| e.into_inner()).remove(&thread::current().id());
    }
}

// ---------------------------------------------------------------------------------------------
// Failures, and the ones already known.

#[derive(Debug, Clone)]
enum Failure {
    Panic { stage: String, location: String, message: String },
    Invariant { stage: String, message: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic { stage, location, message } => write!(f, "panic in {stage} at {location}: {message}"),
            Failure::Invariant { stage, message } => write!(f, "invariant broken in {stage}: {message}"),
        }
    }
}

/// A failure of the core that has a reproducer below; see the module docs.
struct Known {
    /// The `#[ignore]`d test that reproduces it.
    reproducer: &'static str,
    matches: fn(&Failure) -> bool,
}

/// Matchers of panics look at the location and message only (the panic hook has no stage).
const KNOWN: &[Known] = &[];

#[allow(dead_code)] // for entries of `KNOWN`
fn is_panic_at(f: &Failure, file: &str, needle: &str) -> bool {
    matches!(f, Failure::Panic { location, message, .. } if location.contains(file) && message.contains(needle))
}

fn known_panic(location: &str, message: &str) -> Option<&'static Known> {
    let f = Failure::Panic { stage: String::new(), location: location.into(), message: message.into() };
    KNOWN.iter().find(|k| (k.matches)(&f))
}

fn known(f: &Failure) -> Option<&'static Known> {
    KNOWN.iter().find(|k| (k.matches)(f))
}

/// Runs one stage, turning a panic into a [`Failure`].
fn guarded<T>(stage: impl FnOnce() -> String, f: impl FnOnce() -> T) -> Result<T, Failure> {
    install_hooks();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        // A panic that the core caught itself (processing guards against panics in the
        // geometry algorithms) still counts: the input found a bug.
        Ok(v) => match LAST_PANIC.with(|p| p.borrow_mut().take()) {
            None => Ok(v),
            Some((location, message)) => {
                Err(Failure::Panic { stage: format!("{} (caught inside the core)", stage()), location, message })
            }
        },
        Err(_) => {
            let (location, message) = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            Err(Failure::Panic { stage: stage(), location, message })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pipeline under test.

/// A reader that hands out at most `chunk` bytes per call, and fails with `Interrupted` every
/// other call when `interrupt` is set.
struct Trickle<'a> {
    rest: &'a [u8],
    chunk: usize,
    interrupt: bool,
    /// Whether the last call failed with `Interrupted`.
    failed_last: bool,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed_last = self.interrupt && !self.failed_last;
        if self.failed_last {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "try again"));
        }
        let n = self.rest.len().min(buf.len()).min(self.chunk.max(1));
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Index, offset, text, fault and transform of one framed feature.
type FramedFeature = (u64, u64, Vec<u8>, Option<(ProblemCode, String)>, CrsTransform);

/// What the reader made of an input, in comparable form.
#[derive(Debug, PartialEq)]
struct Framing {
    features: Vec<FramedFeature>,
    error: Option<String>,
}

/// Frames `input`, checking the reader's own invariants.
fn frame<R: Read>(
    src: R,
    input_len: usize,
    opts: ReaderOptions,
    raws: Option<&mut Vec<RawFeature>>,
) -> Result<Framing, Failure> {
    let stage = || format!("reader ({opts:?})");
    let mut framing = Framing { features: Vec::new(), error: None };
    let mut kept = Vec::new();
    let mut reader = GeoJsonReader::new(src, opts);
    // Every item consumes input, so more items than bytes means the reader is not advancing.
    let max_items = input_len + 2;
    let mut last_offset = 0u64;
    loop {
        let item = guarded(stage, || reader.next())?;
        let Some(item) = item else { break };
        match item {
            Ok(raw) => {
                let i = framing.features.len() as u64;
                let bad = |message: String| Failure::Invariant { stage: stage(), message };
                if raw.index != i {
                    return Err(bad(format!(
                        "feature {i} has index {}: indices must be consecutive from 0",
                        raw.index
                    )));
                }
                if raw.fault.is_some() && !raw.bytes.is_empty() {
                    return Err(bad(format!("feature {i} has a fault and {} bytes of text", raw.bytes.len())));
                }
                if raw.offset > input_len as u64 || raw.offset < last_offset {
                    return Err(bad(format!(
                        "feature {i} has offset {} (previous {last_offset}, input {input_len} bytes)",
                        raw.offset
                    )));
                }
                if raw.bytes.len() > opts.max_feature_bytes {
                    return Err(bad(format!(
                        "feature {i} has {} bytes, over the {} byte limit",
                        raw.bytes.len(),
                        opts.max_feature_bytes
                    )));
                }
                last_offset = raw.offset;
                framing.features.push((
                    raw.index,
                    raw.offset,
                    raw.bytes.clone(),
                    raw.fault.as_ref().map(|p| (p.code, p.message.clone())),
                    raw.transform.clone(),
                ));
                if raws.is_some() {
                    kept.push(raw);
                }
                if framing.features.len() > max_items {
                    return Err(bad(format!(
                        "{} features from {input_len} bytes: the reader does not advance",
                        framing.features.len()
                    )));
                }
            }
            Err(e) => {
                framing.error = Some(e.to_string());
                let after = guarded(stage, || reader.next())?;
                if after.is_some() {
                    return Err(Failure::Invariant {
                        stage: stage(),
                        message: format!("the reader went on after the error {e}"),
                    });
                }
                break;
            }
        }
    }
    if let Some(raws) = raws {
        *raws = kept;
    }
    Ok(framing)
}

/// Checks an encoded geometry: well-formed little-endian ISO WKB of the stated kind, with
/// finite ordinates. Errors name the first non-finite ordinate as `non-finite x|y|z`.
fn check_wkb(g: &EncodedGeometry) -> Result<(), String> {
    /// What the writer must have written, checked as the reader walks it.
    struct Written {
        kind: GeometryKind,
        has_z: bool,
        problem: Option<String>,
    }
    impl Written {
        fn refuse(&mut self, problem: String) -> Result<(), Reason> {
            self.problem = Some(problem);
            Err(Reason::Refused("not as written"))
        }
    }
    impl Visitor for Written {
        fn begin(&mut self, h: &Header, part: Part, _: u32) -> Result<(), Reason> {
            let iso = h.kind.wkb_code() + if self.has_z { 1000 } else { 0 };
            let want = if part.parent.is_none() { Some(self.kind) } else { part.required_kind() };
            if !h.little_endian {
                self.refuse("WKB byte order 0, expected 1 (little-endian)".into())
            } else if h.code != iso {
                self.refuse(format!("WKB type {}: not the ISO code {iso} (has_z = {})", h.code, self.has_z))
            } else if want.is_some_and(|w| w != h.kind) {
                self.refuse(format!("WKB type {:?}, expected {want:?}", h.kind))
            } else if part.depth > 16 {
                self.refuse("WKB nested too deeply".into())
            } else {
                Ok(())
            }
        }
        fn position(&mut self, _: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
            for (name, v) in [("x", Some(x)), ("y", Some(y)), ("z", z)] {
                match v {
                    Some(v) if !v.is_finite() => return self.refuse(format!("non-finite {name} ordinate ({v})")),
                    _ => {}
                }
            }
            Ok(())
        }
    }
    let mut written = Written { kind: g.kind, has_z: g.has_z, problem: None };
    let len = wkb::walk(&g.wkb, &mut written).map_err(|e| match written.problem.take() {
        Some(problem) => format!("{problem} at byte {}", e.offset),
        None => format!("WKB: {e}"),
    })?;
    if len != g.wkb.len() {
        return Err(format!("{} bytes of WKB after the geometry", g.wkb.len() - len));
    }
    if let Some(b) = g.bbox {
        if ![b.min_x, b.min_y, b.max_x, b.max_y].iter().all(|v| v.is_finite()) || b.min_x > b.max_x || b.min_y > b.max_y
        {
            return Err(format!("bad bbox {b:?}"));
        }
    }
    Ok(())
}

fn check_row(row: &Row, raw: &RawFeature) -> Result<(), String> {
    if row.index != raw.index {
        return Err(format!("row index {} for raw feature {}", row.index, raw.index));
    }
    if let Some(g) = &row.geometry {
        check_wkb(g)?;
    }
    let m = row.measures;
    for (name, v) in [("area", m.area_m2), ("length", m.length_m)] {
        if let Some(v) = v {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} measure is {v}"));
            }
        }
    }
    // A (valid, so non-overlapping) polygon covers no more than its lon/lat extent — as long
    // as it is small: geodesic edges between far-apart vertices leave the lon/lat box.
    if let (Some(area), Some(g)) = (m.area_m2, &row.geometry) {
        if let (GeometryKind::Polygon | GeometryKind::MultiPolygon, Some(b)) =
            (g.kind, g.bbox.filter(|b| b.max_x - b.min_x < 1.0 && b.max_y - b.min_y < 1.0))
        {
            let extent = extent_area_m2(b.min_x, b.min_y, b.max_x, b.max_y);
            if area > extent * 1.02 + 1.0 {
                return Err(format!("area measure {area} m² is more than the {extent} m² of its extent {b:?}"));
            }
        }
    }
    if let PropValue::Real(f) = row.id {
        if !f.is_finite() {
            return Err(format!("id is {f}"));
        }
    }
    for (_, v) in &row.properties {
        if let PropValue::Real(f) = v {
            if !f.is_finite() {
                return Err(format!("property value {f}"));
            }
        }
    }
    Ok(())
}

/// Area of a lon/lat rectangle, m², on the sphere of the WGS84 ellipsoid's surface area.
fn extent_area_m2(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> f64 {
    const AUTHALIC_RADIUS_M: f64 = 6_371_007.2;
    AUTHALIC_RADIUS_M
        * AUTHALIC_RADIUS_M
        * (max_x - min_x).to_radians()
        * (max_y.to_radians().sin() - min_y.to_radians().sin())
}

const POLICIES: [Policy; 3] = [Policy::Skip, Policy::Reject, Policy::Repair];

/// What the inputs of one property test came to, to tell whether its strategy reaches deep.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    inputs: u64,
    read_errors: u64,
    features: u64,
    faults: u64,
    stored: u64,
    repaired: u64,
    invalid: u64,
}

thread_local! {
    static SEEN: Cell<Seen> = Cell::new(Seen::default());
}

fn seen(f: impl FnOnce(&mut Seen)) {
    SEEN.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

/// Runs the whole path on one input; returns every failure found (not just the first).
fn pipeline(input: &[u8], opts: ReaderOptions, chunked: Option<(usize, bool)>) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut raws = Vec::new();
    let framing = match frame(input, input.len(), opts, Some(&mut raws)) {
        Ok(f) => f,
        Err(f) => return vec![f],
    };
    seen(|s| {
        s.inputs += 1;
        s.read_errors += u64::from(framing.error.is_some());
        s.features += raws.len() as u64;
        s.faults += raws.iter().filter(|r| r.fault.is_some()).count() as u64;
    });
    if let Some((chunk, interrupt)) = chunked {
        let trickle = Trickle { rest: input, chunk, interrupt, failed_last: false };
        match frame(trickle, input.len(), opts, None) {
            Ok(again) if again == framing => {}
            Ok(again) => failures.push(Failure::Invariant {
                stage: format!("reader in reads of {chunk} bytes"),
                message: format!("framing differs from a single read:\n  one read: {framing:?}\n  trickled: {again:?}"),
            }),
            Err(f) => failures.push(f),
        }
    }
    let mut schema = SchemaBuilder::default();
    for raw in &raws {
        if let Err(f) =
            guarded(|| format!("observe_schema (feature {})", raw.index), || observe_schema(raw, &mut schema))
        {
            failures.push(f);
        }
    }
    let schema = schema.finish();
    let mut outcomes: Vec<Vec<Option<Processed>>> = Vec::new();
    for policy in POLICIES {
        let processor = Processor::new(&schema, policy);
        let mut out = Vec::new();
        for raw in &raws {
            let stage = || format!("process ({policy:?}, feature {})", raw.index);
            let processed = match guarded(stage, || processor.process(raw.clone())) {
                Ok(p) => p,
                Err(f) => {
                    failures.push(f);
                    out.push(None);
                    continue;
                }
            };
            let broken = match &processed {
                Processed::Row(row, issue) => check_row(row, raw).err().or_else(|| match (policy, issue) {
                    (_, None) => None,
                    (Policy::Repair, Some(i)) if i.action == Action::Repaired && i.index == raw.index => None,
                    (_, Some(i)) => Some(format!("a stored row with issue {i:?}")),
                }),
                Processed::Invalid(issue) => {
                    let want = if policy == Policy::Reject { Action::Rejected } else { Action::Skipped };
                    if issue.index != raw.index {
                        Some(format!("issue index {} for raw feature {}", issue.index, raw.index))
                    } else if issue.action != want {
                        Some(format!("issue action {:?} under policy {policy:?}", issue.action))
                    } else {
                        None
                    }
                }
            };
            if let Some(message) = broken {
                failures.push(Failure::Invariant { stage: stage(), message });
            }
            match (policy, &processed) {
                (Policy::Skip, Processed::Row(..)) => seen(|s| s.stored += 1),
                (Policy::Skip, Processed::Invalid(_)) => seen(|s| s.invalid += 1),
                (Policy::Repair, Processed::Row(_, Some(_))) => seen(|s| s.repaired += 1),
                _ => {}
            }
            out.push(Some(processed));
        }
        outcomes.push(out);
    }
    // A feature stored as it is under one policy is stored the same under all of them.
    for (i, raw) in raws.iter().enumerate() {
        if let (Some(skip), Some(reject), Some(repair)) = (&outcomes[0][i], &outcomes[1][i], &outcomes[2][i]) {
            let stored = |p: &Processed| matches!(p, Processed::Row(_, None));
            let consistent = stored(skip) == stored(reject)
                && (!stored(skip) || skip == repair)
                && (raw.fault.is_none() || !matches!(repair, Processed::Row(..)));
            if !consistent {
                failures.push(Failure::Invariant {
                    stage: format!("policies (feature {})", raw.index),
                    message: format!(
                        "policies disagree:\n  skip: {skip:?}\n  reject: {reject:?}\n  repair: {repair:?}"
                    ),
                });
            }
        }
    }
    failures
}

/// Parses one text that serde_json accepts with the feature parser and the value classifier.
fn value_paths(text: &str) -> Vec<Failure> {
    let mut failures = Vec::new();
    for (parts, transform) in [
        (Parts::All, CrsTransform::Identity),
        (Parts::PropertiesOnly, CrsTransform::Identity),
        (Parts::All, CrsTransform::WebMercator),
    ] {
        let stage = || format!("parse_feature ({parts:?}, {transform:?})");
        let parsed = guarded(stage, || {
            parse_feature(text.as_bytes(), &transform, parts, |_, v| {
                v.kind();
                v.to_json_text();
            })
        });
        match parsed {
            Err(f) => failures.push(f),
            Ok(parsed) => {
                let _ = guarded(stage, || parsed.id.kind()).map_err(|f| failures.push(f));
                if let (Some(g), true) = (&parsed.geometry, parsed.problems.is_empty()) {
                    let mut bad = None;
                    g.for_each_pos(&mut |p| {
                        if !(p.x.is_finite()
                            && p.y.is_finite()
                            && (p.z.is_finite() || p.z.is_nan())
                            && p.x.abs() <= 180.0
                            && p.y.abs() <= 90.0)
                        {
                            bad.get_or_insert(*p);
                        }
                    });
                    if let Some(p) = bad {
                        failures.push(Failure::Invariant {
                            stage: stage(),
                            message: format!("a geometry without problems has the position {p:?}"),
                        });
                    }
                }
            }
        }
    }
    let stage = || "PropValue::from_raw_json".to_string();
    match guarded(stage, || PropValue::from_raw_json(text)) {
        Err(f) => failures.push(f),
        Ok(v) => {
            if let PropValue::Real(f) = v {
                if !f.is_finite() {
                    failures.push(Failure::Invariant { stage: stage(), message: format!("Real({f})") });
                }
            }
            let all = [
                FieldType::Null,
                FieldType::Boolean,
                FieldType::Integer,
                FieldType::WideInteger,
                FieldType::Real,
                FieldType::Date,
                FieldType::DateTime,
                FieldType::Text,
                FieldType::Json,
            ];
            if let Err(f) = guarded(stage, || {
                v.kind();
                v.to_json_text();
                all.iter().for_each(|t| drop(v.for_column(*t)));
            }) {
                failures.push(f);
            }
        }
    }
    failures
}

/// Counts the reader's calls, to check what must hold of any walk.
#[derive(Default)]
struct Calls {
    open: i64,
    deepest: u32,
    positions: usize,
}

impl Visitor for Calls {
    fn begin(&mut self, _: &Header, part: Part, _: u32) -> Result<(), Reason> {
        self.open += 1;
        self.deepest = self.deepest.max(part.depth);
        Ok(())
    }
    fn position(&mut self, _: u32, _: f64, _: f64, _: Option<f64>) -> Result<(), Reason> {
        self.positions += 1;
        Ok(())
    }
    fn end(&mut self, _: &Header, _: Part) -> Result<(), Reason> {
        self.open -= 1;
        Ok(())
    }
}

/// Reads `input` as WKB. Besides panics: no geometry deeper than the limit; an error's offset
/// within the input; a geometry read has its calls balanced, took no more bytes than there
/// are (16 at least per position), and reads the same from exactly the bytes it took.
fn wkb_paths(input: &[u8]) -> Vec<Failure> {
    let stage = || "wkb::walk".to_string();
    let invariant = |message: String| Failure::Invariant { stage: stage(), message };
    let walked = guarded(stage, || {
        let mut calls = Calls::default();
        (wkb::walk(input, &mut calls), calls)
    });
    let (result, calls) = match walked {
        Ok(walked) => walked,
        Err(f) => return vec![f],
    };
    let mut failures = Vec::new();
    if calls.deepest > MAX_DEPTH {
        failures.push(invariant(format!("a geometry at depth {}", calls.deepest)));
    }
    match result {
        Err(e) if e.offset > input.len() => failures.push(invariant(format!("{e}, past the {} bytes", input.len()))),
        Err(_) => {}
        Ok(len) => {
            if len > input.len() || calls.open != 0 || calls.positions * 16 > len {
                failures.push(invariant(format!(
                    "{len} bytes read, {} left open, {} positions",
                    calls.open, calls.positions
                )));
            }
            match guarded(stage, || wkb::walk(&input[..len.min(input.len())], &mut Calls::default())) {
                Ok(again) if again == Ok(len) => {}
                Ok(again) => failures.push(invariant(format!("{len} bytes read, but {again:?} from just those"))),
                Err(f) => failures.push(f),
            }
        }
    }
    failures
}

/// Printable form of an input: a Rust byte-string literal, shortened when long.
fn show(input: &[u8]) -> String {
    let shown: String = input.iter().take(4096).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if input.len() > 4096 {
        format!("b\"{shown}\"… ({} bytes in all)", input.len())
    } else {
        format!("b\"{shown}\"")
    }
}

/// An input with a readable `Debug`, so that proptest prints it as a byte string.
#[derive(Clone)]
struct Input(Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.0))
    }
}

/// Tally of known failures tolerated during one property test.
#[derive(Default)]
struct Tally(RefCell<HashMap<&'static str, u64>>);

impl Tally {
    /// Fails the case on any failure that is not known (or on any failure, when strict).
    fn judge(&self, input: &[u8], failures: Vec<Failure>) -> Result<(), TestCaseError> {
        let mut unknown = Vec::new();
        for f in failures {
            match known(&f) {
                Some(k) if !strict() => *self.0.borrow_mut().entry(k.reproducer).or_default() += 1,
                _ => unknown.push(f),
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = unknown.iter().map(|f| format!("  - {f}")).collect();
        Err(TestCaseError::fail(format!("{} failure(s) on input {}:\n{}", unknown.len(), show(input), list.join("\n"))))
    }

    fn summary(&self) -> String {
        let tally = self.0.borrow();
        if tally.is_empty() {
            return "no known failures hit".into();
        }
        let mut parts: Vec<String> = tally.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        parts.sort();
        format!("known failures tolerated: {}", parts.join(", "))
    }
}

/// The seed of every property test under `CI`.
const CI_SEED: u64 = 20_261_207;

/// Runs one property with `default_cases` cases (or `PROPTEST_CASES`).
fn run_property<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(&Tally, S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: fmt::Debug,
{
    install_hooks();
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random if std::env::var_os("CI").is_some() => CI_SEED,
        RngSeed::Random => std::collections::hash_map::RandomState::new().hash_one(name),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    let cases = config.cases;
    let tally = Tally::default();
    SEEN.with(|s| s.set(Seen::default()));
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        let _busy = Busy::new(|| format!("{name}: {value:?}"));
        test(&tally, value)
    });
    let s = SEEN.with(Cell::get);
    let reach = if s.inputs == 0 {
        String::new()
    } else {
        format!(
            "{} framings ({} ended in a read error) gave {} features ({} with faults): {} stored, {} invalid under skip, {} repaired; ",
            s.inputs, s.read_errors, s.features, s.faults, s.stored, s.invalid, s.repaired
        )
    };
    eprintln!("{name}: {cases} cases (seed {seed}) in {:.1?}; {reach}{}", started.elapsed(), tally.summary());
    if let Err(e) = result {
        panic!("{name}: {e}\nrepeat with PROPTEST_RNG_SEED={seed}");
    }
}

/// Small limits, so that the too-large and too-deep paths run too.
fn small_opts() -> impl Strategy<Value = ReaderOptions> {
    (prop_oneof![0usize..64, 64usize..4096], 0usize..12)
        .prop_map(|(max_feature_bytes, max_depth)| ReaderOptions { max_feature_bytes, max_depth })
}

/// The pipeline with the default limits (read at once and trickled) and with `small`.
fn check_input(
    tally: &Tally,
    input: &[u8],
    small: ReaderOptions,
    chunk: usize,
    interrupt: bool,
) -> Result<(), TestCaseError> {
    let mut failures = pipeline(input, ReaderOptions::default(), Some((chunk, interrupt)));
    failures.extend(pipeline(input, small, None));
    tally.judge(input, failures)
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn bytes_of(s: impl Into<String>) -> Vec<u8> {
    s.into().into_bytes()
}

fn select_bytes(items: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
    prop::sample::select(items).prop_map(|b| b.to_vec()).boxed()
}

/// Bytes that matter to JSON framing and parsing.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b":",
    b",",
    b" ",
    b"\n",
    b"\r",
    b"\t",
    b"\x1e",
    b"\0",
    b"\x01",
    b"\x1f",
    b"\x7f",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"0",
    b"-",
    b"e",
    b".",
    b"1e999",
    b"-0",
    b"null",
    b"true",
    b"\\u",
    b"\\ud800",
    b"\"type\"",
    b"\"Feature\"",
    b"\"features\"",
    b"\"coordinates\"",
    b"\"geometry\"",
    b"\"properties\"",
    b"[[[",
    b"]]]",
    b"{\"a\":",
    b"\xc3\xa9",
    b"\xe2\x80\xa8",
];

/// Numbers: ordinary, huge and tiny exponents, negative zero, very long digit strings.
fn json_number() -> BoxedStrategy<String> {
    const FIXED: &[&str] = &[
        "0",
        "-0",
        "-0.0",
        "0.0",
        "1",
        "-1",
        "0.1",
        "1.5",
        "180",
        "-180",
        "90",
        "-90",
        "180.0000001",
        "1e999",
        "-1e999",
        "1E400",
        "1e-400",
        "-1e-400",
        "5e-324",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "9007199254740993",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "0.12345678901234567890123",
        "1e9223372036854775807",
        "1e-9223372036854775808",
        "0e9223372036854775807",
        "0.0e-9223372036854775808",
        "0.01e-9223372036854775808",
        "1e18446744073709551616",
        "1e+2",
        "1E-2",
    ];
    let exponents: &'static [&'static str] = &[
        "0",
        "1",
        "2",
        "22",
        "307",
        "308",
        "309",
        "323",
        "324",
        "400",
        "999",
        "99999",
        "9223372036854775806",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "00",
        "01",
    ];
    let generated = (
        any::<bool>(),
        prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,3}", "[1-9][0-9]{15,40}"],
        prop::option::of("[0-9]{1,25}"),
        prop::option::of((
            prop::sample::select(&["e", "E", "e+", "e-", "E-", "E+"][..]),
            prop::sample::select(exponents),
        )),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            s.push_str(&int);
            if let Some(frac) = frac {
                s.push('.');
                s.push_str(&frac);
            }
            if let Some((e, x)) = exp {
                s.push_str(e);
                s.push_str(x);
            }
            s
        });
    prop_oneof![prop::sample::select(FIXED).prop_map(str::to_string), generated].boxed()
}

/// Dates and date-times, with one character replaced or inserted now and then.
fn date_like() -> BoxedStrategy<String> {
    const TEMPLATES: &[&str] = &[
        "2024-02-29",
        "2022-11-16T09:29:13Z",
        "2022-11-16T09:29:13.5+02:00",
        "2022-11-16t09:29:13z",
        "1999-12-31T23:59:60-00:00",
        "2022-13-16",
        "0000-00-00T00:00:00Z",
        "2022-11-16T09:29:13.Z",
    ];
    (prop::sample::select(TEMPLATES), prop::option::of((any::<Index>(), any::<char>(), any::<bool>())))
        .prop_map(|(t, change)| {
            let mut chars: Vec<char> = t.chars().collect();
            if let Some((at, c, insert)) = change {
                let i = at.index(chars.len());
                if insert {
                    chars.insert(i, c);
                } else {
                    chars[i] = c;
                }
            }
            chars.into_iter().collect()
        })
        .boxed()
}

/// The inside of a JSON string; `lax` adds raw control bytes, bad escapes and invalid UTF-8.
fn string_body(lax: bool) -> BoxedStrategy<Vec<u8>> {
    const ESCAPES: &[&[u8]] = &[
        b"\\n",
        b"\\\"",
        b"\\\\",
        b"\\/",
        b"\\b",
        b"\\f",
        b"\\r",
        b"\\t",
        b"\\u00e9",
        b"\\u0000",
        b"\\u001e",
        b"\\ud800",
        b"\\udc00",
        b"\\ud83d\\ude00",
        b"\\uD800\\u0041",
        b"\\uDBFF\\uDFFF",
        b"\\uFEFF",
        b"\\u2028",
    ];
    const RAW: &[&[u8]] = &[
        b"\0",
        b"\x01",
        b"\x1e",
        b"\x1f",
        b"\n",
        b"\r",
        b"\t",
        b"\x7f",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xef\xbb\xbf",
        b"\xc0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\\",
        b"\\x",
        b"\\u12",
        b"\\uZZZZ",
        b"\"",
    ];
    let safe_char = any::<char>().prop_filter_map("JSON string character", |c| {
        (c != '"' && c != '\\' && c >= ' ').then(|| c.to_string().into_bytes())
    });
    let piece = if lax {
        prop_oneof![
            4 => "[a-zA-Z0-9 _.:-]{0,12}".prop_map(bytes_of),
            2 => safe_char,
            2 => select_bytes(ESCAPES),
            2 => select_bytes(RAW),
            1 => date_like().prop_map(bytes_of),
        ]
        .boxed()
    } else {
        prop_oneof![
            4 => "[a-zA-Z0-9 _.:-]{0,12}".prop_map(bytes_of),
            2 => safe_char,
            2 => select_bytes(ESCAPES),
            1 => date_like().prop_map(bytes_of),
        ]
        .boxed()
    };
    prop::collection::vec(piece, 0..5).prop_map(|ps| ps.concat()).boxed()
}

fn json_string(lax: bool) -> BoxedStrategy<Vec<u8>> {
    let quoted = string_body(lax).prop_map(|b| [&b"\""[..], &b, b"\""].concat());
    if lax {
        prop_oneof![
            8 => quoted,
            1 => string_body(true).prop_map(|b| [&b"\""[..], &b].concat()),
            1 => date_like().prop_map(|s| format!("\"{s}\"").into_bytes()),
        ]
        .boxed()
    } else {
        prop_oneof![4 => quoted, 1 => date_like().prop_map(|s| format!("\"{s}\"").into_bytes())].boxed()
    }
}

const KEYS: &[&str] = &[
    "type",
    "features",
    "geometry",
    "geometries",
    "coordinates",
    "properties",
    "id",
    "bbox",
    "crs",
    "name",
    "a",
    "",
    "__proto__",
    "constructor",
    "é",
    "a b",
    "type ",
    "Type",
];

const TYPE_NAMES: &[&str] = &[
    "Feature",
    "FeatureCollection",
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
    "feature",
    "point",
    "",
    "Topology",
];

fn json_key(lax: bool) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(|k| format!("\"{k}\"").into_bytes()),
        1 => json_string(lax),
    ]
    .boxed()
}

fn whitespace(lax: bool) -> BoxedStrategy<Vec<u8>> {
    if lax {
        select_bytes(&[b"", b"", b"", b" ", b"\n", b"\t", b"\r\n", b"\x1e", b"\x0c", b"\xc2\xa0", b"\0"])
    } else {
        select_bytes(&[b"", b"", b"", b" ", b"\n", b"\t", b"\r\n"])
    }
}

/// `open` `items` separated by commas `close`; `lax` may drop or double separators.
fn join(open: &[u8], items: Vec<Vec<u8>>, close: &[u8], ws: Vec<u8>, broken: Option<u8>) -> Vec<u8> {
    let mut out = open.to_vec();
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        out.extend_from_slice(&ws);
        out.extend_from_slice(&item);
        if i + 1 < n {
            match broken {
                Some(0) if i == 0 => {}
                Some(1) if i == 0 => out.extend_from_slice(b",,"),
                _ => out.push(b','),
            }
        }
    }
    if broken == Some(2) {
        out.push(b',');
    }
    out.extend_from_slice(&ws);
    out.extend_from_slice(close);
    out
}

fn broken(lax: bool) -> BoxedStrategy<Option<u8>> {
    if lax {
        prop_oneof![6 => Just(None), 1 => (0u8..3).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    }
}

/// JSON-ish values; with `lax` off, valid JSON (up to serde_json's nesting limit).
fn json_value(lax: bool) -> BoxedStrategy<Vec<u8>> {
    const LITERALS: &[&[u8]] = &[b"true", b"false", b"null"];
    const BAD_LITERALS: &[&[u8]] = &[
        b"tru",
        b"nul",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"undefined",
        b"'a'",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"0x10",
        b"-",
    ];
    let leaf = if lax {
        prop_oneof![
            3 => json_number().prop_map(bytes_of),
            3 => json_string(true),
            1 => select_bytes(LITERALS),
            1 => select_bytes(BAD_LITERALS),
            1 => prop::sample::select(TYPE_NAMES).prop_map(|t| format!("\"{t}\"").into_bytes()),
        ]
        .boxed()
    } else {
        prop_oneof![
            3 => json_number().prop_map(bytes_of),
            3 => json_string(false),
            1 => select_bytes(LITERALS),
            1 => prop::sample::select(TYPE_NAMES).prop_map(|t| format!("\"{t}\"").into_bytes()),
        ]
        .boxed()
    };
    leaf.prop_recursive(5, 48, 6, move |inner| {
        let ws = whitespace(lax);
        let array = (prop::collection::vec(inner.clone(), 0..6), ws.clone(), broken(lax))
            .prop_map(|(items, ws, b)| join(b"[", items, b"]", ws, b));
        let object = (prop::collection::vec((json_key(lax), inner.clone()), 0..6), ws.clone(), broken(lax)).prop_map(
            |(members, ws, b)| {
                let items = members.into_iter().map(|(k, v)| [k, b":".to_vec(), v].concat()).collect();
                join(b"{", items, b"}", ws, b)
            },
        );
        // Objects shaped like GeoJSON, so that values reach the geometry and property parsers.
        let geojson = (
            prop::sample::select(TYPE_NAMES),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..4),
            ws.clone(),
            broken(lax),
        )
            .prop_map(|(ty, members, ws, b)| {
                let mut items = vec![format!("\"type\":\"{ty}\"").into_bytes()];
                items.extend(members.into_iter().map(|(k, v)| [format!("\"{k}\":").into_bytes(), v].concat()));
                join(b"{", items, b"}", ws, b)
            });
        // Deep nesting: far past the reader's and serde_json's depth limits.
        const OPENERS: &[&[u8]] = &[b"[", b"{\"a\":", b"[[", b"{\"coordinates\":["];
        let deep =
            (prop::sample::select(OPENERS), 1usize..300, inner, any::<bool>()).prop_map(move |(open, n, v, close)| {
                let closer: &[u8] = match open {
                    b"[" => b"]",
                    b"[[" => b"]]",
                    b"{\"a\":" => b"}",
                    _ => b"]}",
                };
                let mut out = open.repeat(n);
                out.extend_from_slice(&v);
                if close || !lax {
                    out.extend_from_slice(&closer.repeat(n));
                }
                out
            });
        prop_oneof![3 => array, 3 => object, 3 => geojson, 1 => deep]
    })
    .boxed()
}

/// Whole documents built from JSON-ish values: single texts, FeatureCollections, line- and
/// record-separated sequences, with an optional BOM and an optional truncation.
fn grammar_document() -> BoxedStrategy<Vec<u8>> {
    const PREFIXES: &[&[u8]] = &[b"", b"\xef\xbb\xbf", b"\xef\xbb", b" \n", b"\x1e"];
    let values = prop::collection::vec(json_value(true), 1..4);
    let extra = prop::collection::vec((json_key(true), json_value(true)), 0..3);
    (0u8..5, values, extra, prop::sample::select(PREFIXES), prop::option::weighted(0.3, any::<Index>()))
        .prop_map(|(framing, values, extra, prefix, truncate)| {
            let mut doc = prefix.to_vec();
            match framing {
                0 => doc.extend_from_slice(&values[0]),
                1 => {
                    doc.extend_from_slice(b"{\"type\":\"FeatureCollection\",");
                    for (k, v) in extra {
                        doc.extend([k, b":".to_vec(), v, b",".to_vec()].concat());
                    }
                    doc.extend(join(b"\"features\":[", values, b"]}", Vec::new(), None));
                }
                2 => doc.extend(values.join(&b"\n"[..])),
                3 => values.iter().for_each(|v| doc.extend([&b"\x1e"[..], v, b"\n"].concat())),
                _ => doc.extend(values.concat()),
            }
            if let Some(at) = truncate {
                doc.truncate(at.index(doc.len() + 1));
            }
            doc
        })
        .boxed()
}

/// Coordinates: a small grid (repeated and collinear points, self-intersections), anywhere
/// in range, and special values.
fn ordinate(limit: f64) -> BoxedStrategy<String> {
    prop_oneof![
        10 => (-3i32..=3).prop_map(|v| v.to_string()),
        6 => (-limit..=limit).prop_map(|v| format!("{v}")),
        2 => prop::sample::select(&["-0", "0.0", "1e-320", "5e-324", "-5e-324", "0.1", "0.30000000000000004", "1e-15", "179.99999999999997", "180", "-180", "90", "-90", "89.99999999999999"][..]).prop_map(str::to_string),
        1 => json_number(),
    ]
    .boxed()
}

fn position(z: bool) -> BoxedStrategy<String> {
    let xy = (ordinate(180.0), ordinate(90.0));
    if z {
        (xy, ordinate(1000.0)).prop_map(|((x, y), z)| format!("[{x},{y},{z}]")).boxed()
    } else {
        xy.prop_map(|(x, y)| format!("[{x},{y}]")).boxed()
    }
}

/// A JSON string literal.
fn json_text(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn list(items: Vec<String>) -> String {
    format!("[{}]", items.join(","))
}

fn ring(z: bool) -> BoxedStrategy<String> {
    (prop::collection::vec(position(z), 2..7), prop::bool::weighted(0.85))
        .prop_map(|(mut ps, close)| {
            if close {
                ps.push(ps[0].clone());
            }
            list(ps)
        })
        .boxed()
}

fn simple_geometry(z: bool) -> BoxedStrategy<String> {
    prop_oneof![
        position(z).prop_map(|c| format!("{{\"type\":\"Point\",\"coordinates\":{c}}}")),
        prop::collection::vec(position(z), 0..5)
            .prop_map(|ps| format!("{{\"type\":\"MultiPoint\",\"coordinates\":{}}}", list(ps))),
        prop::collection::vec(position(z), 0..6)
            .prop_map(|ps| format!("{{\"type\":\"LineString\",\"coordinates\":{}}}", list(ps))),
        prop::collection::vec(prop::collection::vec(position(z), 0..5).prop_map(list), 0..4)
            .prop_map(|ls| format!("{{\"type\":\"MultiLineString\",\"coordinates\":{}}}", list(ls))),
        prop::collection::vec(ring(z), 0..4)
            .prop_map(|rs| format!("{{\"type\":\"Polygon\",\"coordinates\":{}}}", list(rs))),
        prop::collection::vec(prop::collection::vec(ring(z), 1..3).prop_map(list), 0..4)
            .prop_map(|ps| format!("{{\"type\":\"MultiPolygon\",\"coordinates\":{}}}", list(ps))),
    ]
    .boxed()
}

fn geometry() -> BoxedStrategy<String> {
    // Mostly one dimension per geometry, sometimes mixed.
    let z = prop::bool::weighted(0.2);
    let simple = z.prop_flat_map(simple_geometry);
    let mixed = simple_geometry(false).prop_flat_map(|a| simple_geometry(true).prop_map(move |b| (a.clone(), b)));
    let collection = prop::collection::vec(simple.clone(), 0..4)
        .prop_map(|gs| format!("{{\"type\":\"GeometryCollection\",\"geometries\":{}}}", list(gs)));
    let nested = collection.clone().prop_map(|gc| format!("{{\"type\":\"GeometryCollection\",\"geometries\":[{gc}]}}"));
    prop_oneof![
        8 => simple,
        1 => mixed.prop_map(|(a, b)| format!("{{\"type\":\"GeometryCollection\",\"geometries\":[{a},{b}]}}")),
        2 => collection,
        1 => nested,
    ]
    .boxed()
}

fn property_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => json_number(),
        3 => json_string(false).prop_map(|b| String::from_utf8(b).expect("strict strings are UTF-8")),
        2 => date_like().prop_map(|s| json_text(&s)),
        1 => prop::sample::select(&["null", "true", "false", "[]", "{}", "[1,\"a\",{\"b\":null}]", "{\"k\":[1.5,2e3]}"][..]).prop_map(str::to_string),
    ]
    .boxed()
}

fn feature() -> BoxedStrategy<String> {
    let props = prop::collection::vec((prop::sample::select(KEYS), property_value()), 0..5).prop_map(|ps| {
        let members: Vec<String> = ps.into_iter().map(|(k, v)| format!("{}:{v}", json_text(k))).collect();
        format!("{{{}}}", members.join(","))
    });
    let id = prop::option::of(prop_oneof![
        json_number(),
        "[a-z0-9]{0,8}".prop_map(|s| json_text(&s)),
        date_like().prop_map(|s| json_text(&s))
    ]);
    let geom = prop_oneof![8 => geometry(), 1 => Just("null".to_string())];
    let extras = prop::sample::select(
        &[
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            ",\"bbox\":[-180,-90,180,90]",
            ",\"bbox\":[1,2,3]",
            ",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"EPSG:3857\"}}",
            ",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"EPSG:2056\"}}",
        ][..],
    );
    (id, props, geom, extras)
        .prop_map(|(id, props, geom, extras)| {
            let id = id.map(|i| format!("\"id\":{i},")).unwrap_or_default();
            format!("{{\"type\":\"Feature\",{id}\"properties\":{props},\"geometry\":{geom}{extras}}}")
        })
        .boxed()
}

/// Valid GeoJSON documents in every framing the reader accepts.
fn geojson_document() -> BoxedStrategy<String> {
    let features = prop::collection::vec(feature(), 0..5);
    let header = prop::sample::select(
        &[
            "",
            "\"name\":\"x\",",
            "\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"urn:ogc:def:crs:OGC:1.3:CRS84\"}},",
            "\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"EPSG:3857\"}},",
            "\"bbox\":[-180,-90,180,90],",
        ][..],
    );
    (0u8..6, features, header, geometry())
        .prop_map(|(framing, features, header, geometry)| match framing {
            0 | 1 => format!("{{\"type\":\"FeatureCollection\",{header}\"features\":[{}]}}", features.join(",\n")),
            2 => features.iter().map(|f| format!("{f}\n")).collect(),
            3 => features.iter().map(|f| format!("\x1e{f}\n")).collect(),
            4 => features.first().cloned().unwrap_or(geometry),
            _ => format!("{{\"features\":[{}],{header}\"type\":\"FeatureCollection\"}}", features.join(",")),
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, 1 << bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), select_bytes(INTERESTING)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..24).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
    .boxed()
}

fn mutate(mut doc: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = doc.len();
        match m {
            Mutation::Flip(i, mask) if len > 0 => doc[i.index(len)] ^= mask,
            Mutation::Set(i, b) if len > 0 => doc[i.index(len)] = *b,
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                doc.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                doc.drain(at..(at + n).min(len));
            }
            Mutation::Duplicate(i, n) if len > 0 => {
                let at = i.index(len);
                let slice = doc[at..(at + n).min(len)].to_vec();
                doc.splice(at..at, slice);
            }
            Mutation::Truncate(i) => doc.truncate(i.index(len + 1)),
            _ => {}
        }
    }
    doc
}

/// The shape of a WKB geometry: positions per line string and ring, members per container.
#[derive(Debug, Clone)]
enum WkbShape {
    Point,
    LineString(usize),
    Polygon(Vec<usize>),
    /// A multi-geometry or collection (type code 4 to 7) and its members, of any kind.
    Members(u32, Vec<WkbShape>),
}

fn wkb_shape() -> BoxedStrategy<WkbShape> {
    let leaf = prop_oneof![
        Just(WkbShape::Point),
        (0usize..6).prop_map(WkbShape::LineString),
        prop::collection::vec(0usize..6, 0..3).prop_map(WkbShape::Polygon),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        (4u32..8, prop::collection::vec(inner, 0..4)).prop_map(|(code, members)| WkbShape::Members(code, members))
    })
    .boxed()
}

/// How a document writes its headers: byte order, dimensions (Z, M) as ISO codes or EWKB
/// flags, and an EWKB SRID.
#[derive(Debug, Clone, Copy)]
struct WkbStyle {
    little: bool,
    z: bool,
    m: bool,
    ewkb: bool,
    srid: Option<u32>,
}

fn write_wkb(out: &mut Vec<u8>, shape: &WkbShape, style: WkbStyle, ordinates: &mut impl Iterator<Item = f64>) {
    let u32_bytes = |v: u32| if style.little { v.to_le_bytes() } else { v.to_be_bytes() };
    let code = match shape {
        WkbShape::Point => 1,
        WkbShape::LineString(_) => 2,
        WkbShape::Polygon(_) => 3,
        WkbShape::Members(code, _) => *code,
    };
    let code = if style.ewkb {
        code | if style.z { 0x8000_0000 } else { 0 }
            | if style.m { 0x4000_0000 } else { 0 }
            | if style.srid.is_some() { 0x2000_0000 } else { 0 }
    } else {
        code + 1000 * (u32::from(style.z) + 2 * u32::from(style.m))
    };
    out.push(u8::from(style.little));
    out.extend_from_slice(&u32_bytes(code));
    if let (true, Some(srid)) = (style.ewkb, style.srid) {
        out.extend_from_slice(&u32_bytes(srid));
    }
    let dims = 2 + usize::from(style.z) + usize::from(style.m);
    let mut positions = |out: &mut Vec<u8>, n: usize| {
        for v in ordinates.by_ref().take(n * dims) {
            out.extend_from_slice(&if style.little { v.to_le_bytes() } else { v.to_be_bytes() });
        }
    };
    match shape {
        WkbShape::Point => positions(out, 1),
        WkbShape::LineString(n) => {
            out.extend_from_slice(&u32_bytes(*n as u32));
            positions(out, *n);
        }
        WkbShape::Polygon(rings) => {
            out.extend_from_slice(&u32_bytes(rings.len() as u32));
            for n in rings {
                out.extend_from_slice(&u32_bytes(*n as u32));
                positions(out, *n);
            }
        }
        WkbShape::Members(_, members) => {
            out.extend_from_slice(&u32_bytes(members.len() as u32));
            for member in members {
                write_wkb(out, member, style, ordinates);
            }
        }
    }
}

/// Well-formed WKB of every type, in either byte order, with ISO codes or EWKB flags.
fn wkb_document() -> BoxedStrategy<Vec<u8>> {
    let style = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), prop::option::of(any::<u32>()))
        .prop_map(|(little, z, m, ewkb, srid)| WkbStyle { little, z, m, ewkb, srid });
    let ordinates =
        prop::collection::vec(prop_oneof![4 => -180.0f64..180.0, 1 => any::<f64>(), 1 => Just(f64::NAN)], 1..8);
    (wkb_shape(), style, ordinates)
        .prop_map(|(shape, style, ordinates)| {
            let mut out = Vec::new();
            write_wkb(&mut out, &shape, style, &mut ordinates.iter().copied().cycle());
            out
        })
        .boxed()
}

/// A read size and whether reads are interrupted, for the trickled framing.
fn trickle() -> impl Strategy<Value = (usize, bool)> {
    (prop_oneof![1usize..4, 4usize..64, Just(1 << 20)], prop::bool::weighted(0.2))
}

// ---------------------------------------------------------------------------------------------
// Property tests.

#[test]
fn arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        // Starting with an object, so that more than the first byte is read.
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| [&b"{"[..], &b].concat()),
        prop::collection::vec(select_bytes(INTERESTING), 0..96).prop_map(|b| b.concat()),
        prop::collection::vec(select_bytes(INTERESTING), 0..96).prop_map(|b| [
            &b"{\"type\":\"FeatureCollection\",\"features\":["[..],
            &b.concat()
        ]
        .concat()),
    ]
    .prop_map(Input);
    run_property(
        "arbitrary_bytes",
        4096,
        (bytes, small_opts(), trickle()),
        |tally, (input, small, (chunk, interrupt))| check_input(tally, &input.0, small, chunk, interrupt),
    );
}

#[test]
fn grammar_documents() {
    run_property(
        "grammar_documents",
        2048,
        (grammar_document().prop_map(Input), small_opts(), trickle()),
        |tally, (input, small, (chunk, interrupt))| check_input(tally, &input.0, small, chunk, interrupt),
    );
}

#[test]
fn valid_geojson_documents() {
    run_property(
        "valid_geojson_documents",
        1024,
        (geojson_document(), small_opts(), trickle()),
        |tally, (doc, small, (chunk, interrupt))| check_input(tally, doc.as_bytes(), small, chunk, interrupt),
    );
}

#[test]
fn mutated_geojson_documents() {
    let docs = (geojson_document(), prop::collection::vec(mutation(), 1..8))
        .prop_map(|(doc, ms)| Input(mutate(doc.into_bytes(), &ms)));
    run_property(
        "mutated_geojson_documents",
        2048,
        (docs, small_opts(), trickle()),
        |tally, (input, small, (chunk, interrupt))| check_input(tally, &input.0, small, chunk, interrupt),
    );
}

#[test]
fn valid_json_values_through_the_feature_parser() {
    let texts =
        prop_oneof![3 => json_value(false), 2 => feature().prop_map(bytes_of), 1 => geometry().prop_map(bytes_of)]
            .prop_map(Input);
    run_property("valid_json_values_through_the_feature_parser", 2048, texts, |tally, input| {
        // Only what serde_json accepts: that is what the reader hands on.
        let Ok(text) = std::str::from_utf8(&input.0) else { return Ok(()) };
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Ok(());
        }
        tally.judge(&input.0, value_paths(text))
    });
}

#[test]
fn wkb_arbitrary_bytes() {
    // Mostly behind a real header, so that more than the header is read.
    let codes: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 1002, 2003, 3007, 0x8000_0002, 0x6000_0003, 0x2000_0007];
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (0u8..2, prop::sample::select(codes), prop::collection::vec(any::<u8>(), 0..256)).prop_map(
            |(order, code, rest)| {
                let code = if order == 1 { code.to_le_bytes() } else { code.to_be_bytes() };
                [&[order][..], &code, &rest].concat()
            }
        ),
    ]
    .prop_map(Input);
    run_property("wkb_arbitrary_bytes", 4096, bytes, |tally, input| tally.judge(&input.0, wkb_paths(&input.0)));
}

#[test]
fn wkb_mutated_documents() {
    let docs = (wkb_document(), prop::collection::vec(mutation(), 1..6));
    run_property("wkb_mutated_documents", 4096, docs, |tally, (doc, mutations)| {
        // Unmutated, the whole document is one geometry.
        match wkb::walk(&doc, &mut Calls::default()) {
            Ok(len) if len == doc.len() => {}
            other => {
                return Err(TestCaseError::fail(format!("{other:?} for the {} bytes of {}", doc.len(), show(&doc))))
            }
        }
        let mutated = mutate(doc, &mutations);
        tally.judge(&mutated, wkb_paths(&mutated))
    });
}

/// The check of stored geometries refuses what the writer must not write.
#[test]
fn check_wkb_holds_the_writer_to_its_form() {
    let point = |wkb: Vec<u8>, has_z| EncodedGeometry { kind: GeometryKind::Point, has_z, bbox: None, wkb };
    let le = |code: u32, ords: &[f64]| {
        let mut w = vec![1];
        w.extend_from_slice(&code.to_le_bytes());
        ords.iter().for_each(|v| w.extend_from_slice(&v.to_le_bytes()));
        w
    };
    assert_eq!(check_wkb(&point(le(1, &[1.0, 2.0]), false)), Ok(()));
    assert_eq!(check_wkb(&point(le(1001, &[1.0, 2.0, 3.0]), true)), Ok(()));
    let mut be = vec![0];
    be.extend_from_slice(&1u32.to_be_bytes());
    be.extend_from_slice(&[0; 16]);
    let refused = [
        (point(be, false), "byte order"),
        (point(le(1 | 0x8000_0000, &[1.0, 2.0, 3.0]), true), "not the ISO code"),
        (point(le(1001, &[1.0, 2.0, 3.0]), false), "not the ISO code"),
        (point(le(2, &[0.0]), false), "expected Some(Point)"),
        (point(le(1, &[1.0, f64::NAN]), false), "non-finite y ordinate (NaN) at byte 5"),
        (point(le(1, &[1.0, 2.0, 3.0]), false), "8 bytes of WKB after the geometry"),
        (point(le(1, &[1.0]), false), "WKB: the input ends early at byte 13"),
    ];
    for (g, want) in refused {
        let e = check_wkb(&g).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression tests for nasty inputs.

/// Runs the pipeline on a large input with the default and small limits, failing on any
/// failure, and bounds the memory it takes.
fn nasty(input: &[u8]) {
    let _busy = Busy::new(|| show(input));
    let small = ReaderOptions { max_feature_bytes: 1 << 16, max_depth: 16 };
    let (failures, peak) = peak_memory(|| {
        let mut f = pipeline(input, ReaderOptions::default(), (input.len() <= 1 << 16).then_some((3, false)));
        f.extend(pipeline(input, small, None));
        f
    });
    let list: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
    assert!(failures.is_empty(), "{} failure(s) on {}:\n{}", failures.len(), show(input), list.join("\n"));
    // The reader's 1 MiB buffer, a few copies of the largest feature, and a constant.
    let bound = (64 << 20) + 16 * input.len();
    assert!(peak <= bound, "{peak} bytes held at once for an input of {} bytes (bound {bound})", input.len());
}

/// The same text as a whole document, a feature of a FeatureCollection, a property value, a
/// line of newline-delimited GeoJSON and a record of a text sequence.
fn nasty_in_every_frame(text: &[u8]) {
    nasty(text);
    nasty(&[&b"{\"type\":\"FeatureCollection\",\"features\":["[..], text, b"]}"].concat());
    nasty(&[&b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"v\":"[..], text, b"}}]}"].concat());
    nasty(&[&b"{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"v\":"[..], text, b"}}"].concat());
    nasty(&[&b"{\"type\":\"Feature\",\"geometry\":null,\"properties\":null}\n"[..], text, b"\n{}\n"].concat());
    nasty(&[&b"\x1e"[..], text, b"\n\x1e{\"type\":\"Point\",\"coordinates\":[0,0]}\n"].concat());
}

#[test]
fn a_million_open_brackets() {
    let open = b"[".repeat(1_000_000);
    nasty_in_every_frame(&open);
    nasty_in_every_frame(&[open.clone(), b"]".repeat(1_000_000)].concat());
}

#[test]
fn a_hundred_thousand_nested_objects() {
    let open = b"{\"a\":".repeat(100_000);
    nasty_in_every_frame(&open);
    nasty_in_every_frame(&[open.clone(), b"1".to_vec(), b"}".repeat(100_000)].concat());
    let geometry =
        [b"{\"type\":\"GeometryCollection\",\"geometries\":[".repeat(100_000), b"]}".repeat(100_000)].concat();
    nasty_in_every_frame(&geometry);
}

#[test]
fn a_ten_megabyte_string() {
    let body = "x".repeat(10 << 20);
    let string = format!("\"{body}\"");
    nasty_in_every_frame(string.as_bytes());
    // Unterminated, as a key, and as a feature id.
    nasty_in_every_frame(&string.as_bytes()[..string.len() - 1]);
    nasty(format!("{{\"type\":\"FeatureCollection\",\"features\":[{{\"type\":\"Feature\",\"geometry\":null,\"properties\":{{{string}:1}}}}]}}").as_bytes());
    nasty(format!("{{\"type\":\"FeatureCollection\",\"features\":[{{\"type\":\"Feature\",\"id\":{string},\"geometry\":null,\"properties\":null}}]}}").as_bytes());
    nasty(format!("{{{string}:1,\"type\":\"FeatureCollection\",\"features\":[]}}").as_bytes());
}

#[test]
fn a_position_with_a_million_numbers() {
    let numbers = vec!["1.5"; 1_000_000].join(",");
    let point = format!("{{\"type\":\"Point\",\"coordinates\":[{numbers}]}}");
    nasty(point.as_bytes());
    nasty(format!("{{\"type\":\"FeatureCollection\",\"features\":[{{\"type\":\"Feature\",\"properties\":{{\"p\":[{numbers}]}},\"geometry\":{point}}}]}}").as_bytes());
    // The same numbers where the type wants deeper nesting (every number is misplaced).
    let numbers = vec!["-0"; 100_000].join(",");
    for ty in ["LineString", "Polygon", "MultiPolygon"] {
        nasty(format!("{{\"type\":\"{ty}\",\"coordinates\":[{numbers}]}}").as_bytes());
    }
}

#[test]
fn a_truncated_feature_collection() {
    for input in [
        &b"{\"type\":\"FeatureCollection\",\"features\":["[..],
        b"{\"type\":\"FeatureCollection\",\"features\":[{",
        b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",",
        b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"a\":\"",
        b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"a\":\"\\",
        b"{\"type\":\"FeatureCollection\",\"features\":[{},",
        b"{\"type\":\"FeatureCollection\",\"features\":[]",
        b"{\"type\":\"FeatureCollection\",\"features\"",
        b"{\"type\":\"FeatureCollection\",\"features\":",
        b"{\"type\":\"FeatureCollection\",",
        b"{\"type\":",
        b"{\"",
        b"{",
        b"\xef\xbb\xbf",
        b"\x1e",
        b"",
    ] {
        nasty(input);
        nasty(&[input, b"\n{\"type\":\"Feature\",\"properties\":null,\"geometry\":null}\n"].concat());
    }
}

#[test]
fn nul_bytes() {
    for input in [
        &b"\0"[..],
        b"\0\0\0\0",
        b"{\0}",
        b"{\"type\":\"FeatureCollection\",\"features\":[\0]}",
        b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"a\":\"\0\"},\"geometry\":null}]}",
        b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"\0\":1},\"geometry\":null}]}",
        b"{\"type\":\"Feature\",\"properties\":{\"a\":\"\\u0000\"},\"geometry\":{\"type\":\"Point\",\"coordinates\":[0\0,0]}}",
        b"{\"type\":\"Feature\"}\n\0\n{\"type\":\"Feature\"}\n",
        b"\x1e\0\x1e{\"type\":\"Point\",\"coordinates\":[0,0]}",
    ] {
        nasty(input);
    }
    nasty(&vec![0u8; 3 << 20]);
    nasty(&[&b"{"[..], &vec![0u8; 3 << 20]].concat());
}

#[test]
fn invalid_utf8_in_strings_and_keys() {
    for bad in [
        &b"\xff"[..],
        b"\xc3",
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\x80",
        b"\xe2\x82",
        b"\xef\xbb\xbf",
        b"\x80",
    ] {
        let s = [&b"\"a"[..], bad, b"b\""].concat();
        let with = |parts: &[&[u8]]| parts.concat();
        nasty(&with(&[b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"k\":", &s, b"}}]}"]));
        nasty(&with(&[
            b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":null,\"properties\":{",
            &s,
            b":1}}]}",
        ]));
        nasty(&with(&[
            b"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"id\":",
            &s,
            b",\"geometry\":null,\"properties\":null}]}",
        ]));
        nasty(&with(&[b"{", &s, b":1,\"type\":\"FeatureCollection\",\"features\":[]}"]));
        nasty(&with(&[b"{\"type\":", &s, b",\"coordinates\":[0,0]}"]));
        nasty(&with(&[b"{\"type\":\"Feature\",\"geometry\":null,\"properties\":{", &s, b":", &s, b"}}\n"]));
        nasty(&with(&[b"\x1e{\"type\":\"Feature\",\"geometry\":{\"type\":", &s, b"},\"properties\":null}\n"]));
    }
}

#[test]
fn proto_keys() {
    for key in ["__proto__", "constructor", "prototype", "hasOwnProperty", "toString"] {
        nasty(format!("{{\"type\":\"FeatureCollection\",\"features\":[{{\"type\":\"Feature\",\"geometry\":null,\"properties\":{{\"{key}\":{{\"polluted\":true}},\"{key}\":1}}}}]}}").as_bytes());
        nasty(format!("{{\"{key}\":{{}},\"type\":\"FeatureCollection\",\"features\":[{{\"type\":\"Feature\",\"{key}\":1,\"geometry\":null,\"properties\":null}}]}}").as_bytes());
    }
}

#[test]
fn extreme_numbers() {
    for n in [
        "1e-400",
        "123456789012345678901234567890",
        "-123456789012345678901234567890.5e-3",
        "1e999",
        "-1e999",
        "-0",
        "-0.0",
        "5e-324",
        "1.7976931348623159e308",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        let text = format!("{{\"type\":\"Feature\",\"id\":{n},\"properties\":{{\"n\":{n},\"a\":[{n}]}},\"geometry\":{{\"type\":\"Point\",\"coordinates\":[{n},{n}]}}}}");
        nasty(text.as_bytes());
        nasty(format!("{{\"type\":\"FeatureCollection\",\"features\":[{text},{text}]}}").as_bytes());
        assert!(value_paths(&text).is_empty(), "{n}");
        assert!(value_paths(n).is_empty(), "{n}");
    }
    // Kept exactly, as text.
    assert_eq!(
        PropValue::from_raw_json("123456789012345678901234567890"),
        PropValue::Json("123456789012345678901234567890".into())
    );
    assert!(matches!(PropValue::from_raw_json("1e-400"), PropValue::Json(t) if t == "1e-400"));
}

/// Feeds a feature with one property through the schema pass, as a load does.
fn schema_pass(feature: &str) {
    let raws: Vec<RawFeature> =
        GeoJsonReader::new(feature.as_bytes(), ReaderOptions::default()).collect::<Result<_, _>>().unwrap();
    let mut schema = SchemaBuilder::default();
    raws.iter().for_each(|r| observe_schema(r, &mut schema));
}

#[test]
fn date_time_check_on_multibyte_strings() {
    // 9 ASCII bytes, then 'é' over bytes 9..11, then enough for the 20-byte date-time check.
    schema_pass(r#"{"type":"Feature","properties":{"p":"aaaaaaaaaéaaaaaaaaaa"},"geometry":null}"#);
    // The same through a feature id.
    schema_pass(r#"{"type":"Feature","id":"aaaaaaaaaéaaaaaaaaaa","properties":null,"geometry":null}"#);
    for s in ["2022-11-1é09:29:13Z00", "2022-11-16é9:29:13Z00", "2022-11-16T09:29:1é+02:00", "€€€€€€€€€€€€€€€€€€€€"]
    {
        nasty(
            format!("{{\"type\":\"Feature\",\"id\":\"{s}\",\"properties\":{{\"p\":\"{s}\"}},\"geometry\":null}}")
                .as_bytes(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reproducers of known failures (see `KNOWN`).

/// The fate of a single GeoJSON text under `policy`.
fn process_one(input: &str, policy: Policy) -> Processed {
    let raws: Vec<RawFeature> =
        GeoJsonReader::new(input.as_bytes(), ReaderOptions::default()).collect::<Result<_, _>>().unwrap();
    Processor::new(&SchemaBuilder::default().finish(), policy).process(raws[0].clone())
}

#[test]
fn reproducer_repair_of_a_3d_collection_writes_nan_z() {
    let input = r#"{"type":"GeometryCollection","geometries":[{"type":"Polygon","coordinates":[[[0,0,0],[1,1,0],[1,0,0],[0,1,0],[0,0,0]]]},{"type":"Point","coordinates":[0,0,0]}]}"#;
    if let Processed::Row(row, _) = process_one(input, Policy::Repair) {
        check_wkb(row.geometry.as_ref().unwrap()).unwrap();
    }
}

#[test]
fn reproducer_negative_zero_from_web_mercator_breaks_repair() {
    // The panic is caught inside `process` (the feature becomes invalid), so look for it.
    let input = r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[0,0],[-5e-324,88.90011330504439],[0,70.76428177557969]]]},"crs":{"type":"name","properties":{"name":"EPSG:3857"}}}"#;
    if let Err(f) = guarded(|| "process (Repair)".into(), || process_one(input, Policy::Repair)) {
        panic!("{f}");
    }
}

#[test]
fn reproducer_clockwise_polygon_area_is_the_rest_of_the_earth() {
    // geo's geodesic area expects counter-clockwise exteriors and clockwise holes; RFC 7946
    // asks parsers not to reject other windings, and the core accepts them as valid.
    let square = 1.2309e12; // 10° × 10° at the equator, m²
    for input in [
        r#"{"type":"Polygon","coordinates":[[[0,0],[0,10],[10,10],[10,0],[0,0]]]}"#,
        r#"{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[2,2],[4,2],[4,4],[2,4],[2,2]]]}"#,
    ] {
        let Processed::Row(row, _) = process_one(input, Policy::Skip) else { panic!("{input} is valid") };
        let area = row.measures.area_m2.unwrap();
        assert!(area > 0.0 && area < square, "{input}: area {area} m², expected at most {square} m²");
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: failures these tests found, minimised.

/// Exponent arithmetic on a zero with an exponent near `i64::MAX`/`MIN` overflowed.
#[test]
fn zero_with_an_extreme_exponent() {
    PropValue::from_raw_json("0e9223372036854775807");
    PropValue::from_raw_json("0.0e-9223372036854775808");
    schema_pass(r#"{"type":"Feature","properties":{"p":0e9223372036854775807},"geometry":null}"#);
}

/// A repaired polygon whose hole, along geodesic edges spanning 150° of longitude, covers
/// more of the ellipsoid than its shell had a negative area measure.
#[test]
fn hole_larger_than_its_shell_on_the_ellipsoid() {
    let input = r#"{"type":"Feature","properties":{},"geometry":{"type":"MultiPolygon","coordinates":[[[[147.9941008352596,1],[0,1],[-3,0]],[[47.94467158348513,1],[2,0.1],[-3,0]]]]}}"#;
    for policy in POLICIES {
        if let Processed::Row(row, _) = process_one(input, policy) {
            let area = row.measures.area_m2.unwrap();
            assert!(area.is_finite() && area >= 0.0, "{policy:?}: area {area}");
        }
    }
}

/// Policy repair stored a geometry of mixed 2D/3D positions as it was: NaN Z in its WKB.
#[test]
fn repair_never_stores_mixed_dimensions() {
    let input =
        r#"{"type":"Feature","properties":null,"geometry":{"type":"LineString","coordinates":[[0,0],[1,1,1]]}}"#;
    if let Processed::Row(row, _) = process_one(input, Policy::Repair) {
        check_wkb(row.geometry.as_ref().unwrap()).unwrap();
    }
}

/// A GeometryCollection of 2D and 3D members was stored with NaN Z for its 2D positions.
#[test]
fn collection_of_2d_and_3d_members() {
    let input = r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[0,0]},{"type":"Point","coordinates":[0,0,0]}]}"#;
    for policy in POLICIES {
        if let Processed::Row(row, _) = process_one(input, policy) {
            check_wkb(row.geometry.as_ref().unwrap()).unwrap();
        }
    }
}

/// Repairing a polygon with a -0 ordinate panicked in geo's sweep (`intervals_overlap`).
#[test]
fn negative_zero_in_polygon_repair() {
    let input = r#"{"type":"Polygon","coordinates":[[[-0,0],[1,1],[1,0],[0,1],[-0,0]]]}"#;
    // Also a panic caught inside `process`.
    if let Err(f) = guarded(|| "process (Repair)".into(), || process_one(input, Policy::Repair)) {
        panic!("{f}");
    }
}

/// Runs the schema pass and policy `skip` on `doc`, failing if it takes longer than `limit`
/// or holds more than `memory` bytes at once: for work that must stay about linear in the input.
fn within(doc: &str, limit: Duration, memory: usize) {
    let _busy = Busy::new(|| show(doc.as_bytes()));
    let started = Instant::now();
    let ((), peak) = peak_memory(|| {
        let raws: Vec<RawFeature> =
            GeoJsonReader::new(doc.as_bytes(), ReaderOptions::default()).collect::<Result<_, _>>().unwrap();
        let mut schema = SchemaBuilder::default();
        raws.iter().for_each(|r| observe_schema(r, &mut schema));
        let processor = Processor::new(&schema.finish(), Policy::Skip);
        raws.iter().for_each(|r| drop(processor.process(r.clone())));
    });
    let took = started.elapsed();
    assert!(
        took <= limit && peak <= memory,
        "{} input bytes took {took:?} (limit {limit:?}) and held {peak} bytes at once (limit {memory})",
        doc.len()
    );
}

fn square(x: f64, y: f64, side: f64) -> String {
    let (x2, y2) = (x + side, y + side);
    format!("[[{x},{y}],[{x2},{y}],[{x2},{y2}],[{x},{y2}],[{x},{y}]]")
}

/// The duplicate-member check compared every pair of members: 50k keys took over a minute.
#[test]
fn many_property_keys() {
    let props: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":1")).collect();
    within(
        &format!("{{\"type\":\"Feature\",\"geometry\":null,\"properties\":{{{}}}}}", props.join(",")),
        Duration::from_secs(3),
        64 << 20,
    );
}

/// The per-code problem cap counted all earlier problems for every bad position.
#[test]
fn many_problems_in_one_collection() {
    // 40k one-position lines (one problem each), then 40k bad positions in the next member.
    let lines = vec!["[[0,0]]"; 40_000].join(",");
    let positions = vec!["[1]"; 40_000].join(",");
    within(
        &format!("{{\"type\":\"GeometryCollection\",\"geometries\":[{{\"type\":\"MultiLineString\",\"coordinates\":[{lines}]}},{{\"type\":\"LineString\",\"coordinates\":[{positions}]}}]}}"),
        Duration::from_secs(3),
        64 << 20,
    );
}

/// Validation related every pair of polygons: 600 identical squares (20 KB) took 20 s and 95 MB.
#[test]
fn many_polygons_in_one_multipolygon() {
    // Every pair overlaps: one problem per pair, all of them joined into the report line.
    let same = vec![format!("[{}]", square(0.0, 0.0, 1.0)); 600].join(",");
    within(&format!("{{\"type\":\"MultiPolygon\",\"coordinates\":[{same}]}}"), Duration::from_secs(3), 32 << 20);
    // Disjoint squares: valid, and they too were related pair by pair.
    let apart: Vec<String> = (0..10_000)
        .map(|i| format!("[{}]", square((i % 100) as f64 * 1.5 - 80.0, (i / 100) as f64 * 1.5 - 80.0, 1.0)))
        .collect();
    within(
        &format!("{{\"type\":\"MultiPolygon\",\"coordinates\":[{}]}}", apart.join(",")),
        Duration::from_secs(3),
        64 << 20,
    );
}

/// Validation related every pair of holes: 8000 holes took 12 s.
#[test]
fn many_holes_in_one_polygon() {
    let holes: Vec<String> =
        (0..8_000).map(|i| square((i % 100) as f64 * 0.015 - 0.8, (i / 100) as f64 * 0.015 - 0.8, 0.01)).collect();
    within(
        &format!("{{\"type\":\"Polygon\",\"coordinates\":[{},{}]}}", square(-1.0, -1.0, 2.0), holes.join(",")),
        Duration::from_secs(3),
        64 << 20,
    );
}

/// Each top-level member was looked up among all earlier ones: 50k members took 19 s.
#[test]
fn many_top_level_members() {
    let members: Vec<String> = (0..50_000).map(|i| format!("\"m{i}\":1")).collect();
    within(
        &format!("{{\"type\":\"FeatureCollection\",\"features\":[],{}}}", members.join(",")),
        Duration::from_secs(3),
        64 << 20,
    );
}
