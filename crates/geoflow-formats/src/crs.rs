//! Any CRS to WGS84 through PROJ, as installed on the machine: the transformation PROJ picks
//! for each position (`proj_create_crs_to_crs`, axis order normalised for visualisation) is
//! the one every PROJ-based tool (GDAL, pyproj, QGIS) applies to the same definition.
//!
//! PROJ objects are not thread-safe: each thread that transforms positions opens its own
//! context and transformation the first time it needs them, and closes them when it ends.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use geoflow_core::crs::{crs_by_name, CrsResolver, CrsTransform, Reproject};
use geoflow_core::geometry::Pos;
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::served_crs::{CrsId, CrsUnit, Projection, ServedCrs};
use proj_sys as sys;

/// Resolves CRS names (authority codes, URNs and URLs, WKT 1 and 2 including ESRI's dialect,
/// PROJJSON, PROJ strings) with PROJ.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProjResolver;

impl CrsResolver for ProjResolver {
    fn resolve(&self, name: &str) -> Result<CrsTransform, Problem> {
        if let Some(builtin) = crs_by_name(name) {
            return Ok(builtin);
        }
        let resolved = Resolved::new(name)?;
        match resolved.lon_lat {
            true => Ok(CrsTransform::Identity),
            false => Ok(CrsTransform::Reproject(Arc::new(resolved.into_reprojection(name)))),
        }
    }
}

/// What a resolved CRS needs to report about the transformation PROJ will use.
pub fn notes(transform: &CrsTransform) -> Vec<String> {
    match transform {
        CrsTransform::Reproject(r) => r.notes(),
        _ => Vec::new(),
    }
}

/// A source CRS and how to transform from it.
#[derive(Debug)]
pub struct ProjReprojection {
    /// Tells this transformation's per-thread PROJ objects from others'.
    id: u64,
    /// The definition as given, so that each thread builds the same transformation.
    definition: CString,
    name: String,
    notes: Vec<String>,
}

impl Reproject for ProjReprojection {
    fn name(&self) -> &str {
        &self.name
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        with_transformer(self, |t| t.transform(positions))
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Most transformations a thread keeps open.
const KEPT_PER_THREAD: usize = 8;

thread_local! {
    static TRANSFORMERS: RefCell<Vec<(u64, Transformer)>> = const { RefCell::new(Vec::new()) };
}

fn with_transformer<T>(r: &ProjReprojection, f: impl FnOnce(&Transformer) -> Result<T, String>) -> Result<T, String> {
    with_open_transformer(r.id, &r.definition, Direction::ToWgs84, f)
}

/// Runs `f` with this thread's transformer `id` (of `definition`, in `direction`), opened the
/// first time the thread needs it.
fn with_open_transformer<T>(
    id: u64,
    definition: &CStr,
    direction: Direction,
    f: impl FnOnce(&Transformer) -> Result<T, String>,
) -> Result<T, String> {
    TRANSFORMERS.with(|cell| {
        let mut open = cell.borrow_mut();
        if let Some(at) = open.iter().position(|(open_id, _)| *open_id == id) {
            return f(&open[at].1);
        }
        let transformer = Transformer::new(definition, direction)?;
        if open.len() >= KEPT_PER_THREAD {
            open.remove(0);
        }
        open.push((id, transformer));
        f(&open.last().expect("just pushed").1)
    })
}

/// Which way a transformer goes between a CRS and WGS 84.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToWgs84,
    FromWgs84,
}

/// A PROJ context of its own and a transformation between a CRS and WGS84 lon/lat, both in
/// east/north order.
struct Transformer {
    ctx: *mut sys::PJ_CONTEXT,
    pj: *mut sys::PJ,
    direction: Direction,
}

impl Transformer {
    fn new(definition: &CStr, direction: Direction) -> Result<Transformer, String> {
        let ctx = Context::new();
        let crs = ctx.create(definition).ok_or_else(|| ctx.error("cannot read the CRS"))?;
        let wgs84 = ctx.wgs84();
        let (source, target, none) = match direction {
            Direction::ToWgs84 => (&crs, &wgs84, "no transformation to WGS 84"),
            Direction::FromWgs84 => (&wgs84, &crs, "no transformation from WGS 84"),
        };
        // SAFETY: both objects belong to `ctx`; the result is owned and destroyed on drop.
        let pj = unsafe {
            let raw = sys::proj_create_crs_to_crs_from_pj(ctx.0, source.0, target.0, ptr::null_mut(), ptr::null());
            if raw.is_null() {
                return Err(ctx.error(none));
            }
            let normalised = sys::proj_normalize_for_visualization(ctx.0, raw);
            sys::proj_destroy(raw);
            normalised
        };
        if pj.is_null() {
            return Err(ctx.error(none));
        }
        drop((crs, wgs84));
        Ok(Transformer { ctx: ctx.release(), pj, direction })
    }

    fn transform(&self, positions: &mut [Pos]) -> Result<(), String> {
        let stride = std::mem::size_of::<Pos>();
        let n = positions.len();
        let first = positions.as_mut_ptr();
        // SAFETY: x and y of `n` positions, `stride` bytes apart, all inside `positions`.
        unsafe {
            sys::proj_errno_reset(self.pj);
            sys::proj_trans_generic(
                self.pj,
                sys::PJ_DIRECTION_PJ_FWD,
                ptr::addr_of_mut!((*first).x),
                stride,
                n,
                ptr::addr_of_mut!((*first).y),
                stride,
                n,
                ptr::null_mut(),
                0,
                0,
                ptr::null_mut(),
                0,
                0,
            );
        }
        if let Some(i) = positions.iter().position(|p| !p.x.is_finite() || !p.y.is_finite()) {
            // SAFETY: `pj` and `ctx` are alive; the message is a static string of PROJ's.
            let why = unsafe {
                let errno = sys::proj_errno(self.pj);
                let text = sys::proj_context_errno_string(self.ctx, errno);
                if text.is_null() || errno == 0 {
                    "outside the area the transformation covers".to_string()
                } else {
                    CStr::from_ptr(text).to_string_lossy().into_owned()
                }
            };
            let to = match self.direction {
                Direction::ToWgs84 => "to WGS 84",
                Direction::FromWgs84 => "from WGS 84",
            };
            return Err(format!("cannot be transformed {to}: position {i} of a part: {why}"));
        }
        for p in positions.iter_mut() {
            // `+ 0.0` turns -0 into 0, as the coordinate parser does.
            (p.x, p.y) = (p.x + 0.0, p.y + 0.0);
        }
        Ok(())
    }
}

impl Drop for Transformer {
    fn drop(&mut self) {
        // SAFETY: owned since `new`; the context outlives the object.
        unsafe {
            sys::proj_destroy(self.pj);
            sys::proj_context_destroy(self.ctx);
        }
    }
}

/// A PROJ context, destroyed on drop unless released.
struct Context(*mut sys::PJ_CONTEXT);

/// A PROJ object of a context, destroyed on drop.
struct Object(*mut sys::PJ);

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: created by `proj_create*`, destroyed once.
        unsafe {
            sys::proj_destroy(self.0);
        }
    }
}

impl Context {
    fn new() -> Context {
        // SAFETY: a fresh context, owned by the value.
        let ctx = unsafe { sys::proj_context_create() };
        // Keep PROJ's own messages off stderr: errors are read back and reported.
        // SAFETY: `ctx` is valid; PROJ's level 0 logs nothing.
        unsafe { sys::proj_log_level(ctx, sys::PJ_LOG_LEVEL_PJ_LOG_NONE) };
        Context(ctx)
    }

    fn release(self) -> *mut sys::PJ_CONTEXT {
        let ctx = self.0;
        std::mem::forget(self);
        ctx
    }

    fn create(&self, definition: &CStr) -> Option<Object> {
        // SAFETY: a NUL-terminated definition; the object is owned by the result.
        let pj = unsafe { sys::proj_create(self.0, definition.as_ptr()) };
        (!pj.is_null()).then_some(Object(pj))
    }

    fn wgs84(&self) -> Object {
        self.create(c"EPSG:4326").expect("PROJ's database defines EPSG:4326")
    }

    fn error(&self, what: &str) -> String {
        // SAFETY: the context is alive; the message is a static string of PROJ's.
        let detail = unsafe {
            let errno = sys::proj_context_errno(self.0);
            let text = sys::proj_context_errno_string(self.0, errno);
            if text.is_null() || errno == 0 {
                String::new()
            } else {
                format!(" ({})", CStr::from_ptr(text).to_string_lossy())
            }
        };
        format!("{what}{detail}")
    }

    fn string(ptr: *const c_char) -> Option<String> {
        // SAFETY: PROJ returns NUL-terminated strings that live as long as their object.
        (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: owned; every object of it was dropped before (fields drop after this runs
        // only for objects declared later, which callers keep in inner scopes).
        unsafe {
            sys::proj_context_destroy(self.0);
        }
    }
}

/// A CRS read and checked once, on the thread that resolves it.
struct Resolved {
    /// The CRS is WGS84 longitude/latitude already (up to axis order).
    lon_lat: bool,
    name: String,
    notes: Vec<String>,
}

impl Resolved {
    fn new(given: &str) -> Result<Resolved, Problem> {
        let unsupported =
            |why: String| Problem::new(ProblemCode::UnsupportedCrs, format!("CRS {}: {why}", clip(given)));
        let definition = CString::new(given).map_err(|_| unsupported("the name holds a NUL character".into()))?;
        let ctx = Context::new();
        let resolved = {
            let source = ctx
                .create(&definition)
                .ok_or_else(|| unsupported(ctx.error("PROJ does not know it") + "; name it by an EPSG code"))?;
            // SAFETY: `source` belongs to `ctx`.
            let is_crs = unsafe { sys::proj_is_crs(source.0) } != 0;
            if !is_crs {
                return Err(unsupported("it is not a coordinate reference system".into()));
            }
            // SAFETY: as above.
            let kind = unsafe { sys::proj_get_type(source.0) };
            if kind == sys::PJ_TYPE_PJ_TYPE_ENGINEERING_CRS {
                return Err(unsupported("a local (engineering) CRS cannot be placed on the Earth".into()));
            }
            let wgs84 = ctx.wgs84();
            // SAFETY: both objects belong to `ctx`.
            let lon_lat = unsafe {
                sys::proj_is_equivalent_to_with_ctx(
                    ctx.0,
                    source.0,
                    wgs84.0,
                    sys::PJ_COMPARISON_CRITERION_PJ_COMP_EQUIVALENT_EXCEPT_AXIS_ORDER_GEOGCRS,
                ) != 0
            };
            let name = display_name(&ctx, &source);
            let notes = if lon_lat { Vec::new() } else { operation_notes(&ctx, &source, &wgs84, &name)? };
            Resolved { lon_lat, name, notes }
        };
        // Every object is gone: the context may go too.
        drop(ctx);
        // Each thread opens its own transformation later; one must be possible.
        if !resolved.lon_lat {
            Transformer::new(&definition, Direction::ToWgs84).map_err(unsupported)?;
        }
        Ok(resolved)
    }

    fn into_reprojection(self, given: &str) -> ProjReprojection {
        ProjReprojection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            definition: CString::new(given).expect("checked when resolved"),
            name: self.name,
            notes: self.notes,
        }
    }
}

/// `EPSG:27700 (OSGB36 / British National Grid)`: the CRS's own identifier or, for a
/// definition without one (an ESRI `.prj`), the EPSG entry PROJ identifies it with.
fn display_name(ctx: &Context, crs: &Object) -> String {
    // SAFETY: `crs` belongs to `ctx`; returned strings live as long as `crs`.
    let (auth, code, name) = unsafe {
        (
            Context::string(sys::proj_get_id_auth_name(crs.0, 0)),
            Context::string(sys::proj_get_id_code(crs.0, 0)),
            Context::string(sys::proj_get_name(crs.0)).unwrap_or_else(|| "unnamed CRS".to_string()),
        )
    };
    if let (Some(auth), Some(code)) = (auth, code) {
        return format!("{auth}:{code} ({name})");
    }
    match identify(ctx, crs) {
        Some((code, epsg_name)) => format!("EPSG:{code} ({epsg_name})"),
        None => name,
    }
}

/// The EPSG entry PROJ finds equivalent to `crs` with confidence of 70 % or more.
fn identify(ctx: &Context, crs: &Object) -> Option<(String, String)> {
    let mut confidence: *mut c_int = ptr::null_mut();
    // SAFETY: `crs` belongs to `ctx`; the list and confidences are freed below.
    unsafe {
        let list = sys::proj_identify(ctx.0, crs.0, c"EPSG".as_ptr(), ptr::null(), &mut confidence);
        if list.is_null() {
            return None;
        }
        let mut found = None;
        if sys::proj_list_get_count(list) > 0 && !confidence.is_null() && *confidence >= 70 {
            let best = sys::proj_list_get(ctx.0, list, 0);
            if !best.is_null() {
                let code = Context::string(sys::proj_get_id_code(best, 0));
                let name = Context::string(sys::proj_get_name(best));
                found = code.zip(name);
                sys::proj_destroy(best);
            }
        }
        sys::proj_list_destroy(list);
        sys::proj_int_list_destroy(confidence);
        found
    }
}

/// What the load report should say about the transformation: that PROJ's most accurate one
/// needs a grid that is not installed (and which one is used instead), or that PROJ knows
/// only a ballpark one.
fn operation_notes(ctx: &Context, source: &Object, target: &Object, name: &str) -> Result<Vec<String>, Problem> {
    let mut notes = Vec::new();
    // SAFETY: all objects belong to `ctx`; everything created here is freed here.
    unsafe {
        let factory = sys::proj_create_operation_factory_context(ctx.0, ptr::null());
        if factory.is_null() {
            return Ok(notes);
        }
        sys::proj_operation_factory_context_set_grid_availability_use(
            ctx.0,
            factory,
            sys::PROJ_GRID_AVAILABILITY_USE_PROJ_GRID_AVAILABILITY_IGNORED,
        );
        sys::proj_operation_factory_context_set_spatial_criterion(
            ctx.0,
            factory,
            sys::PROJ_SPATIAL_CRITERION_PROJ_SPATIAL_CRITERION_PARTIAL_INTERSECTION,
        );
        let ops = sys::proj_create_operations(ctx.0, source.0, target.0, factory);
        sys::proj_operation_factory_context_destroy(factory);
        if ops.is_null() {
            return Ok(notes);
        }
        let count = sys::proj_list_get_count(ops);
        let describe = |op: *mut sys::PJ| {
            let op_name = Context::string(sys::proj_get_name(op)).unwrap_or_default();
            let accuracy = sys::proj_coordoperation_get_accuracy(ctx.0, op);
            if accuracy > 0.0 {
                format!("{op_name} (accuracy {accuracy} m)")
            } else {
                format!("{op_name} (accuracy unknown)")
            }
        };
        let mut best_missing: Option<(String, Vec<String>)> = None;
        let mut used: Option<String> = None;
        for i in 0..count {
            let op = sys::proj_list_get(ctx.0, ops, i);
            if op.is_null() {
                continue;
            }
            if sys::proj_coordoperation_is_instantiable(ctx.0, op) != 0 {
                used = Some(describe(op));
                sys::proj_destroy(op);
                break;
            }
            if best_missing.is_none() {
                best_missing = Some((describe(op), missing_grids(ctx, op)));
            }
            sys::proj_destroy(op);
        }
        sys::proj_list_destroy(ops);
        if let Some((best, grids)) = best_missing {
            let used = used.as_deref().unwrap_or("none");
            notes.push(format!(
                "PROJ's most accurate transformation from {name} to WGS 84, {best}, needs the grid {} which is not \
                 installed; the best one available was used instead: {used}. Install the grid (PROJ_DATA, or \
                 projsync) for the more accurate result",
                grids.join(", ")
            ));
        } else if let Some(used) = used.as_deref().filter(|u| u.contains("Ballpark")) {
            notes.push(format!(
                "PROJ knows no datum transformation from {name} to WGS 84 and uses {used}: positions may be off by \
                 up to hundreds of metres"
            ));
        }
    }
    Ok(notes)
}

/// The short names of the grids `op` needs and the machine does not have.
///
/// # Safety
/// `op` is a coordinate operation of `ctx`.
unsafe fn missing_grids(ctx: &Context, op: *mut sys::PJ) -> Vec<String> {
    let mut grids = Vec::new();
    let n = sys::proj_coordoperation_get_grid_used_count(ctx.0, op);
    for i in 0..n {
        let (mut short, mut full, mut package, mut url) = (ptr::null(), ptr::null(), ptr::null(), ptr::null());
        let (mut direct, mut open, mut available) = (0, 0, 0);
        let ok = sys::proj_coordoperation_get_grid_used(
            ctx.0,
            op,
            i,
            &mut short,
            &mut full,
            &mut package,
            &mut url,
            &mut direct,
            &mut open,
            &mut available,
        );
        if ok != 0 && available == 0 {
            grids.extend(Context::string(short));
        }
    }
    grids
}

/// Why an EPSG code cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServedCrsError {
    #[error("EPSG:{code}: PROJ does not know it{detail}")]
    Unknown { code: u32, detail: String },
    #[error("EPSG:{code} ({name}) is neither a two-dimensional geographic nor a projected CRS")]
    NotPlanar { code: u32, name: String },
    #[error("EPSG:{code} ({name}): {reason}")]
    NoTransformation { code: u32, name: String, reason: String },
}

/// The EPSG CRS `code` as features are served in it: its authority's axis order, its unit,
/// and PROJ's transformations from and to WGS 84 (the ones `proj_create_crs_to_crs` picks,
/// as PostGIS's `ST_Transform` and pyproj do). Only two-dimensional geographic and projected
/// CRSs are served.
pub fn served_crs(code: u32) -> Result<ServedCrs, ServedCrsError> {
    let definition = CString::new(format!("EPSG:{code}")).expect("no NUL in a number");
    let ctx = Context::new();
    let (north_first, unit, lon_lat, name) = {
        let crs = ctx.create(&definition).ok_or_else(|| ServedCrsError::Unknown { code, detail: ctx.error("") })?;
        let name = display_name(&ctx, &crs);
        // SAFETY: `crs` belongs to `ctx`.
        let unit = match unsafe { sys::proj_get_type(crs.0) } {
            sys::PJ_TYPE_PJ_TYPE_GEOGRAPHIC_2D_CRS => CrsUnit::Degrees,
            sys::PJ_TYPE_PJ_TYPE_PROJECTED_CRS => CrsUnit::Linear,
            _ => return Err(ServedCrsError::NotPlanar { code, name }),
        };
        let wgs84 = ctx.wgs84();
        // SAFETY: both objects belong to `ctx`.
        let lon_lat = unsafe {
            sys::proj_is_equivalent_to_with_ctx(
                ctx.0,
                crs.0,
                wgs84.0,
                sys::PJ_COMPARISON_CRITERION_PJ_COMP_EQUIVALENT_EXCEPT_AXIS_ORDER_GEOGCRS,
            ) != 0
        };
        (north_first(&ctx, &crs), unit, lon_lat, name)
    };
    drop(ctx);
    let projection: Option<Arc<dyn Projection>> = if lon_lat {
        None
    } else {
        // Each thread opens its own transformations later; both must be possible.
        for direction in [Direction::FromWgs84, Direction::ToWgs84] {
            Transformer::new(&definition, direction).map_err(|reason| ServedCrsError::NoTransformation {
                code,
                name: name.clone(),
                reason,
            })?;
        }
        let from_id = NEXT_ID.fetch_add(2, Ordering::Relaxed);
        Some(Arc::new(ProjProjection { from_id, to_id: from_id + 1, definition }))
    };
    Ok(ServedCrs::new(CrsId::Epsg(code), north_first, unit, projection))
}

/// Whether the CRS's first axis points north or south and its second east or west (EPSG:4326's
/// latitude, longitude; some national grids' northing, easting).
fn north_first(ctx: &Context, crs: &Object) -> bool {
    // SAFETY: `crs` belongs to `ctx`; the coordinate system is destroyed here; the direction
    // strings live as long as it.
    unsafe {
        let cs = sys::proj_crs_get_coordinate_system(ctx.0, crs.0);
        if cs.is_null() {
            return false;
        }
        let cs = Object(cs);
        let direction = |index: c_int| {
            let mut out: *const c_char = ptr::null();
            let ok = sys::proj_cs_get_axis_info(
                ctx.0,
                cs.0,
                index,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut out,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            if ok == 0 {
                return String::new();
            }
            Context::string(out).unwrap_or_default().to_ascii_lowercase()
        };
        let (first, second) = (direction(0), direction(1));
        matches!(first.as_str(), "north" | "south") && matches!(second.as_str(), "east" | "west")
    }
}

/// PROJ's transformations between WGS 84 and one CRS, each thread opening its own.
#[derive(Debug)]
struct ProjProjection {
    from_id: u64,
    to_id: u64,
    definition: CString,
}

impl Projection for ProjProjection {
    fn wgs84_to_crs(&self, positions: &mut [Pos]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        with_open_transformer(self.from_id, &self.definition, Direction::FromWgs84, |t| t.transform(positions))
    }

    fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        with_open_transformer(self.to_id, &self.definition, Direction::ToWgs84, |t| t.transform(positions))
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(100) {
        Some((end, _)) => format!("{:?}…", &s[..end]),
        None => format!("{s:?}"),
    }
}

impl fmt::Display for ProjReprojection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::geometry::Geom;

    fn transform(crs: &str, x: f64, y: f64) -> (f64, f64) {
        let t = ProjResolver.resolve(crs).unwrap();
        let mut g = Geom::Point(Pos::xy(x, y));
        t.apply_to(&mut g).unwrap();
        let Geom::Point(p) = g else { unreachable!() };
        (p.x, p.y)
    }

    #[test]
    fn british_national_grid_as_pyproj_gives_it() {
        // pyproj 3.4.1 on PROJ 9.1.1, always_xy, without the OSTN15 grid.
        let (lon, lat) = transform("EPSG:27700", 530000.0, 180000.0);
        assert!((lon - -0.12835394047946935).abs() < 1e-11 && (lat - 51.50399082763378).abs() < 1e-11, "{lon} {lat}");
    }

    #[test]
    fn names_and_notes() {
        let t = ProjResolver.resolve("urn:ogc:def:crs:EPSG::27700").unwrap();
        let CrsTransform::Reproject(r) = &t else { panic!("{t:?}") };
        assert_eq!(r.name(), "EPSG:27700 (OSGB36 / British National Grid)");
        let notes = r.notes();
        assert!(notes.iter().any(|n| n.contains("OSTN15")), "{notes:?}");
        assert_eq!(ProjResolver.resolve("EPSG:4326").unwrap(), CrsTransform::Identity);
        assert_eq!(ProjResolver.resolve("EPSG:4258").map(|t| t == CrsTransform::Identity), Ok(false));
    }

    #[test]
    fn unknown_and_unusable_crs_are_clear_errors() {
        for bad in ["EPSG:99999", "not a crs", "+proj=tmerc +bogus", "EPSG:1024\0"] {
            let err = ProjResolver.resolve(bad).unwrap_err();
            assert_eq!(err.code, ProblemCode::UnsupportedCrs, "{bad}");
            assert!(err.message.contains("CRS"), "{}", err.message);
        }
    }

    #[test]
    fn served_crs_follow_their_authority_axis_order() {
        let lat_lon = served_crs(4326).unwrap();
        assert!(lat_lon.north_first() && !lat_lon.projects() && lat_lon.decimals().is_none());
        let utm = served_crs(32633).unwrap();
        assert!(!utm.north_first() && utm.projects() && utm.decimals() == Some(4));
        // pyproj 3.4.1 on PROJ 9.1.1, in authority order.
        let mut p = [Pos::xy(15.0, 52.0)];
        utm.wgs84_to_crs(&mut p).unwrap();
        assert_eq!((p[0].x, p[0].y), (500000.0, 5761038.2126));
        utm.to_wgs84(&mut p).unwrap();
        assert!((p[0].x - 15.0).abs() < 1e-9 && (p[0].y - 52.0).abs() < 1e-9, "{p:?}");
        // ETRS89-LAEA: northing first.
        let laea = served_crs(3035).unwrap();
        let mut p = [Pos::xy(10.0, 52.0)];
        laea.wgs84_to_crs(&mut p).unwrap();
        assert_eq!((p[0].x, p[0].y), (3210000.0, 4321000.0));
        assert!(matches!(served_crs(99999), Err(ServedCrsError::Unknown { code: 99999, .. })));
        // WGS 84 in three dimensions, and a vertical CRS.
        for code in [4979, 5703] {
            assert!(matches!(served_crs(code), Err(ServedCrsError::NotPlanar { .. })), "{code}");
        }
    }

    #[test]
    fn positions_outside_the_domain_are_a_problem() {
        let t = ProjResolver.resolve("EPSG:32631").unwrap();
        let mut g = Geom::Point(Pos::xy(1e30, 1e30));
        let err = t.apply_to(&mut g).unwrap_err();
        assert_eq!(err.code, ProblemCode::CrsTransform);
    }
}
