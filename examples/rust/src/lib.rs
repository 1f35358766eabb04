//! Safe Rust bindings to imgjudge, zero-shot image-safety judging with
//! multimodal LLMs, over its C API (`capi/imgjudge.h`, docs/c-api.md).
//!
//! ```no_run
//! use imgjudge::{CallOptions, Constitution, Judge, JudgeOptions};
//!
//! let rules = Constitution::from_file("policy.toml")?;
//! let judge = Judge::new(&rules, &JudgeOptions::torch("/models/Qwen2-VL-2B-Instruct"))?;
//! let verdict = judge.judge_file("photo.jpg", &CallOptions::default())?;
//! println!("{} {:?}", verdict.is_unsafe(), verdict.violated_rules());
//! # Ok::<(), imgjudge::Error>(())
//! ```
//!
//! Every handle owns its C object and frees it on drop. `Constitution`,
//! `Judge`, `Verdict` and `CancelToken` are `Send + Sync`, because the C API
//! documents them as immutable (or atomic, for the token) and safe to use from
//! many threads at once.

pub mod sys;

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::ptr;
use std::time::Duration;

/// The status codes of the C API (values pinned; `Unknown` for a code newer
/// than these bindings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    InvalidConstitution,
    InvalidImage,
    LimitExceeded,
    InvalidModel,
    Unsupported,
    Io,
    DeadlineExceeded,
    Cancelled,
    OutOfMemory,
    Backend,
    Internal,
    Unknown(i32),
}

impl Status {
    fn from_code(code: c_int) -> Status {
        match code {
            1 => Status::InvalidArgument,
            2 => Status::InvalidConstitution,
            3 => Status::InvalidImage,
            4 => Status::LimitExceeded,
            5 => Status::InvalidModel,
            6 => Status::Unsupported,
            7 => Status::Io,
            8 => Status::DeadlineExceeded,
            9 => Status::Cancelled,
            10 => Status::OutOfMemory,
            11 => Status::Backend,
            12 => Status::Internal,
            other => Status::Unknown(other),
        }
    }

    /// The C value (`IMGJUDGE_INVALID_ARGUMENT` = 1, ...).
    pub fn code(self) -> i32 {
        match self {
            Status::InvalidArgument => 1,
            Status::InvalidConstitution => 2,
            Status::InvalidImage => 3,
            Status::LimitExceeded => 4,
            Status::InvalidModel => 5,
            Status::Unsupported => 6,
            Status::Io => 7,
            Status::DeadlineExceeded => 8,
            Status::Cancelled => 9,
            Status::OutOfMemory => 10,
            Status::Backend => 11,
            Status::Internal => 12,
            Status::Unknown(code) => code,
        }
    }

    /// The library's stable name, e.g. "invalid_image".
    pub fn name(self) -> &'static str {
        // SAFETY: imgjudge_status_name returns a static, NUL-terminated string for any value.
        unsafe { CStr::from_ptr(sys::imgjudge_status_name(self.code())) }
            .to_str()
            .unwrap_or("unknown")
    }
}

/// A failed call: its status and the library's message (what was wrong and where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.status.name())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C status into a Result, reading this thread's last-error message.
fn check(status: sys::imgjudge_status) -> Result<()> {
    if status == sys::IMGJUDGE_OK {
        return Ok(());
    }
    // SAFETY: never NULL; valid until the next imgjudge call on this thread, and copied now.
    let message = unsafe { CStr::from_ptr(sys::imgjudge_last_error_message()) }
        .to_string_lossy()
        .into_owned();
    Err(Error { status: Status::from_code(status), message })
}

fn c_string(value: &str, what: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error {
        status: Status::InvalidArgument,
        message: format!("{what} contains a NUL byte"),
    })
}

fn c_path(path: &Path) -> Result<CString> {
    let text = path.to_str().ok_or_else(|| Error {
        status: Status::InvalidArgument,
        message: format!("path {} is not valid UTF-8", path.display()),
    })?;
    c_string(text, "path")
}

/// Copies a library-owned string (valid while its owner lives).
///
/// SAFETY: `text` must be a NUL-terminated string.
unsafe fn owned_string(text: *const c_char) -> String {
    CStr::from_ptr(text).to_string_lossy().into_owned()
}

/// Version of the loaded library, e.g. "0.1.0".
pub fn version() -> &'static str {
    // SAFETY: a static string.
    unsafe { CStr::from_ptr(sys::imgjudge_version()) }.to_str().unwrap_or("?")
}

// ---------------------------------------------------------------------------

/// A validated constitution (the safety rules).
pub struct Constitution {
    raw: *mut sys::imgjudge_constitution,
}

// SAFETY: the C API documents a constitution as immutable and thread-safe.
unsafe impl Send for Constitution {}
unsafe impl Sync for Constitution {}

impl Constitution {
    /// Reads and validates a TOML file (errors carry "path:line:column: ...").
    pub fn from_file(path: impl AsRef<Path>) -> Result<Constitution> {
        let path = c_path(path.as_ref())?;
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated path.
        check(unsafe { sys::imgjudge_constitution_load_file(&mut raw, path.as_ptr()) })?;
        Ok(Constitution { raw })
    }

    /// Parses TOML text; `source_name` is used in error messages.
    pub fn from_toml(toml: &str, source_name: &str) -> Result<Constitution> {
        let source = c_string(source_name, "source_name")?;
        let mut raw = ptr::null_mut();
        // SAFETY: the text is passed with its length; it need not be NUL-terminated.
        check(unsafe {
            sys::imgjudge_constitution_load_string(
                &mut raw,
                toml.as_ptr().cast(),
                toml.len(),
                source.as_ptr(),
            )
        })?;
        Ok(Constitution { raw })
    }

    /// The constitution bundled with imgjudge.
    pub fn builtin() -> Result<Constitution> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::imgjudge_constitution_load_default(&mut raw) })?;
        Ok(Constitution { raw })
    }

    /// Rule ids, in file order.
    pub fn rule_ids(&self) -> Result<Vec<String>> {
        let mut count = 0usize;
        // SAFETY: self.raw is a live handle.
        check(unsafe { sys::imgjudge_constitution_rule_count(&mut count, self.raw) })?;
        (0..count)
            .map(|index| {
                let mut id = ptr::null();
                check(unsafe { sys::imgjudge_constitution_rule_id(&mut id, self.raw, index) })?;
                Ok(unsafe { owned_string(id) })
            })
            .collect()
    }

    /// "sha256:<hex>" of the normalized constitution.
    pub fn hash(&self) -> Result<String> {
        let mut hash = ptr::null();
        check(unsafe { sys::imgjudge_constitution_hash(&mut hash, self.raw) })?;
        Ok(unsafe { owned_string(hash) })
    }
}

impl Drop for Constitution {
    fn drop(&mut self) {
        // SAFETY: owned handle, freed once.
        unsafe { sys::imgjudge_constitution_free(self.raw) }
    }
}

// ---------------------------------------------------------------------------

/// Which models to load and how to run them (mirrors `imgjudge_models_options`;
/// `None`/0 = the library's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// "torch" (default) or "scripted".
    pub backend: Option<String>,
    /// Hugging Face folder of the multimodal LLM.
    pub model_dir: Option<String>,
    /// CLIP / SigLIP folder for relevance scanning, optional.
    pub relevance_model_dir: Option<String>,
    /// OWLv2 / OWL-ViT folder for strategy 2 (region removal), optional.
    pub locator_model_dir: Option<String>,
    /// Scripted backend only: its answer script.
    pub script_path: Option<String>,
    /// "cpu" (default) or "cuda[:N]".
    pub device: Option<String>,
    /// "auto" (default), "float32", "bfloat16" or "int8".
    pub dtype: Option<String>,
    /// Intra-op threads; 0 = all cores.
    pub threads: u32,
    /// Memory one image may take in the model, in MiB; 0 = the default (half the RAM, at most 8192).
    pub image_memory_mb: u64,
}

impl ModelOptions {
    /// The torch backend over a Hugging Face model folder.
    pub fn torch(model_dir: &str) -> Self {
        ModelOptions { model_dir: Some(model_dir.into()), ..Default::default() }
    }

    /// The deterministic scripted backend (docs/scripted-backend.md).
    pub fn scripted(script_path: &str) -> Self {
        ModelOptions {
            backend: Some("scripted".into()),
            script_path: Some(script_path.into()),
            ..Default::default()
        }
    }
}

/// The option strings of a `ModelOptions` as C strings, alive while this lives.
struct CModelStrings {
    backend: Option<CString>,
    model_dir: Option<CString>,
    relevance_model_dir: Option<CString>,
    locator_model_dir: Option<CString>,
    script_path: Option<CString>,
    device: Option<CString>,
    dtype: Option<CString>,
    threads: c_int,
}

impl CModelStrings {
    fn new(options: &ModelOptions) -> Result<Self> {
        let optional = |value: &Option<String>, what: &str| -> Result<Option<CString>> {
            value.as_deref().map(|v| c_string(v, what)).transpose()
        };
        Ok(CModelStrings {
            backend: optional(&options.backend, "backend")?,
            model_dir: optional(&options.model_dir, "model_dir")?,
            relevance_model_dir: optional(&options.relevance_model_dir, "relevance_model_dir")?,
            locator_model_dir: optional(&options.locator_model_dir, "locator_model_dir")?,
            script_path: optional(&options.script_path, "script_path")?,
            device: optional(&options.device, "device")?,
            dtype: optional(&options.dtype, "dtype")?,
            threads: i32::try_from(options.threads).map_err(|_| Error {
                status: Status::InvalidArgument,
                message: format!("threads {} is too large", options.threads),
            })?,
        })
    }
}

fn ptr_of(value: &Option<CString>) -> *const c_char {
    value.as_ref().map_or(ptr::null(), |v| v.as_ptr())
}

/// Models loaded once and shared by many judges: two constitutions over one
/// 2B model hold one copy of its weights. Reference-counted on the C side, so a
/// `Models` may be dropped before or after the judges made from it.
pub struct Models {
    raw: *mut sys::imgjudge_models,
}

// SAFETY: the C API documents loaded models as immutable and safe to share between threads.
unsafe impl Send for Models {}
unsafe impl Sync for Models {}

impl Models {
    /// Loads the models (seconds; the weights are copied into memory).
    pub fn load(options: &ModelOptions) -> Result<Models> {
        let strings = CModelStrings::new(options)?;
        let c_options = sys::imgjudge_models_options {
            version: sys::IMGJUDGE_MODELS_OPTIONS_VERSION,
            backend: ptr_of(&strings.backend),
            model_dir: ptr_of(&strings.model_dir),
            relevance_model_dir: ptr_of(&strings.relevance_model_dir),
            locator_model_dir: ptr_of(&strings.locator_model_dir),
            script_path: ptr_of(&strings.script_path),
            device: ptr_of(&strings.device),
            dtype: ptr_of(&strings.dtype),
            threads: strings.threads,
            image_memory_mb: options.image_memory_mb,
        };
        let mut raw = ptr::null_mut();
        // SAFETY: the strings live until the end of this function; the library copies them.
        check(unsafe { sys::imgjudge_models_load(&mut raw, &c_options) })?;
        Ok(Models { raw })
    }
}

impl Drop for Models {
    fn drop(&mut self) {
        // SAFETY: owned handle, released once; judges hold their own references.
        unsafe { sys::imgjudge_models_free(self.raw) }
    }
}

/// How to build a judge (mirrors `imgjudge_judge_options`): the models to load
/// (ignored by `Judge::with_models`, where they must stay unset) and the
/// method's switches and limits (`None`/0 = default).
#[derive(Debug, Clone)]
pub struct JudgeOptions {
    pub models: ModelOptions,
    pub relevance: bool,
    pub debias: bool,
    pub chains: bool,
    pub cascade: bool,
    pub early_exit: bool,
    /// Strategy 2 (needs a locator).
    pub locator: bool,
    /// Token budget of each cascaded-reasoning turn; 0 = the default (512).
    pub reasoning_tokens: u32,
    pub max_image_bytes: u64,
    pub max_image_width: u32,
    pub max_image_height: u32,
    pub max_image_pixels: u64,
}

impl Default for JudgeOptions {
    fn default() -> Self {
        JudgeOptions {
            models: ModelOptions::default(),
            relevance: true,
            debias: true,
            chains: true,
            cascade: true,
            early_exit: true,
            locator: true,
            reasoning_tokens: 0,
            max_image_bytes: 0,
            max_image_width: 0,
            max_image_height: 0,
            max_image_pixels: 0,
        }
    }
}

impl JudgeOptions {
    /// The torch backend over a Hugging Face model folder.
    pub fn torch(model_dir: &str) -> Self {
        JudgeOptions { models: ModelOptions::torch(model_dir), ..Default::default() }
    }

    /// The deterministic scripted backend (docs/scripted-backend.md).
    pub fn scripted(script_path: &str) -> Self {
        JudgeOptions { models: ModelOptions::scripted(script_path), ..Default::default() }
    }
}

/// Per-call deadline and cancellation.
#[derive(Default, Clone, Copy)]
pub struct CallOptions<'a> {
    pub timeout: Option<Duration>,
    pub cancel: Option<&'a CancelToken>,
}

impl CallOptions<'_> {
    fn to_c(&self) -> sys::imgjudge_call_options {
        sys::imgjudge_call_options {
            version: sys::IMGJUDGE_CALL_OPTIONS_VERSION,
            // At least 1 ms, so that a tiny timeout is not read as "none" (0).
            deadline_ms: self
                .timeout
                .map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1)),
            cancel: self.cancel.map_or(ptr::null(), |token| token.raw as *const _),
        }
    }
}

/// A judge: a constitution plus loaded models. Share it between threads
/// (`Arc<Judge>` or scoped threads); every call is independent.
pub struct Judge {
    raw: *mut sys::imgjudge_judge,
}

// SAFETY: the C API documents a judge as immutable and safe to call from many threads.
unsafe impl Send for Judge {}
unsafe impl Sync for Judge {}

impl Judge {
    /// Loads the models and prepares everything image-independent (can take seconds).
    /// To judge by several constitutions, load `Models` once and use `with_models`.
    pub fn new(constitution: &Constitution, options: &JudgeOptions) -> Result<Judge> {
        Self::create(constitution, None, options)
    }

    /// A judge over already loaded models. `options.models` must be left at its
    /// default: the library refuses a model field here, naming it.
    pub fn with_models(
        constitution: &Constitution,
        models: &Models,
        options: &JudgeOptions,
    ) -> Result<Judge> {
        Self::create(constitution, Some(models), options)
    }

    fn create(
        constitution: &Constitution,
        models: Option<&Models>,
        options: &JudgeOptions,
    ) -> Result<Judge> {
        let strings = CModelStrings::new(&options.models)?;
        let reasoning_tokens = i32::try_from(options.reasoning_tokens).map_err(|_| Error {
            status: Status::InvalidArgument,
            message: format!("reasoning_tokens {} is too large", options.reasoning_tokens),
        })?;
        let c_options = sys::imgjudge_judge_options {
            version: sys::IMGJUDGE_JUDGE_OPTIONS_VERSION,
            backend: ptr_of(&strings.backend),
            model_dir: ptr_of(&strings.model_dir),
            relevance_model_dir: ptr_of(&strings.relevance_model_dir),
            script_path: ptr_of(&strings.script_path),
            device: ptr_of(&strings.device),
            dtype: ptr_of(&strings.dtype),
            threads: strings.threads,
            relevance: options.relevance.into(),
            debias: options.debias.into(),
            chains: options.chains.into(),
            cascade: options.cascade.into(),
            early_exit: options.early_exit.into(),
            max_image_bytes: options.max_image_bytes,
            max_image_width: options.max_image_width,
            max_image_height: options.max_image_height,
            max_image_pixels: options.max_image_pixels,
            locator_model_dir: ptr_of(&strings.locator_model_dir),
            locator: options.locator.into(),
            reasoning_tokens,
            image_memory_mb: options.models.image_memory_mb,
        };
        let mut raw = ptr::null_mut();
        // SAFETY: the strings live until the end of this function; the library copies them.
        check(unsafe {
            match models {
                None => sys::imgjudge_judge_create(&mut raw, constitution.raw, &c_options),
                Some(models) => sys::imgjudge_judge_create_with_models(
                    &mut raw,
                    constitution.raw,
                    models.raw,
                    &c_options,
                ),
            }
        })?;
        Ok(Judge { raw })
    }

    /// Judges encoded image bytes (JPEG, PNG, WebP, GIF).
    pub fn judge_bytes(&self, bytes: &[u8], call: &CallOptions) -> Result<Verdict> {
        let call = call.to_c();
        let mut raw = ptr::null_mut();
        // SAFETY: the slice is valid for the call; the library copies what it keeps.
        check(unsafe {
            sys::imgjudge_judge_bytes(&mut raw, self.raw, bytes.as_ptr().cast(), bytes.len(), &call)
        })?;
        Ok(Verdict { raw })
    }

    /// Reads and judges an image file.
    pub fn judge_file(&self, path: impl AsRef<Path>, call: &CallOptions) -> Result<Verdict> {
        let path = c_path(path.as_ref())?;
        let call = call.to_c();
        let mut raw = ptr::null_mut();
        check(unsafe { sys::imgjudge_judge_file(&mut raw, self.raw, path.as_ptr(), &call) })?;
        Ok(Verdict { raw })
    }

    /// Judges 8-bit RGB pixels whose rows are `stride` bytes apart.
    pub fn judge_rgb(
        &self,
        pixels: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        call: &CallOptions,
    ) -> Result<Verdict> {
        let invalid = |message: String| Error { status: Status::InvalidArgument, message };
        let (w, h) = (
            i32::try_from(width).map_err(|_| invalid(format!("width {width} is too large")))?,
            i32::try_from(height).map_err(|_| invalid(format!("height {height} is too large")))?,
        );
        // The C side trusts the buffer to hold `height` rows: check it here, in safe code.
        let needed = (height as usize)
            .checked_sub(1)
            .and_then(|rows| rows.checked_mul(stride))
            .and_then(|bytes| bytes.checked_add(width as usize * 3));
        if height > 0 && stride >= width as usize * 3 && needed.map_or(true, |n| pixels.len() < n) {
            return Err(invalid(format!(
                "{} bytes of pixels are too few for {width}x{height} with stride {stride}",
                pixels.len()
            )));
        }
        let call = call.to_c();
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::imgjudge_judge_rgb(&mut raw, self.raw, pixels.as_ptr(), w, h, stride, &call)
        })?;
        Ok(Verdict { raw })
    }
}

impl Drop for Judge {
    fn drop(&mut self) {
        unsafe { sys::imgjudge_judge_free(self.raw) }
    }
}

// ---------------------------------------------------------------------------

/// The verdict on one image. Immutable.
pub struct Verdict {
    raw: *mut sys::imgjudge_verdict,
}

// SAFETY: the C API documents a verdict as immutable and thread-safe (its JSON is built once).
unsafe impl Send for Verdict {}
unsafe impl Sync for Verdict {}

impl Verdict {
    /// True if the image violates at least one rule.
    pub fn is_unsafe(&self) -> bool {
        let mut unsafe_flag: c_int = 1;
        // Cannot fail on a live handle; on failure the flag stays "unsafe".
        let _ = check(unsafe { sys::imgjudge_verdict_unsafe(&mut unsafe_flag, self.raw) });
        unsafe_flag != 0
    }

    /// True if no rule is violated but one stayed uncertain under
    /// `uncertain = "review"`: route the image to a person.
    pub fn needs_review(&self) -> bool {
        let mut decision: c_int = sys::IMGJUDGE_DECISION_UNSAFE;
        let _ = check(unsafe { sys::imgjudge_verdict_decision(&mut decision, self.raw) });
        decision == sys::IMGJUDGE_DECISION_REVIEW
    }

    /// Ids of the violated rules, in constitution order.
    pub fn violated_rules(&self) -> Vec<String> {
        self.rule_ids(sys::imgjudge_verdict_violated_rule_count, sys::imgjudge_verdict_violated_rule_id)
    }

    /// Ids of the rules that need review (uncertain under `uncertain = "review"`),
    /// in constitution order.
    pub fn review_rules(&self) -> Vec<String> {
        self.rule_ids(sys::imgjudge_verdict_review_rule_count, sys::imgjudge_verdict_review_rule_id)
    }

    fn rule_ids(
        &self,
        count_of: unsafe extern "C" fn(*mut usize, *const sys::imgjudge_verdict) -> sys::imgjudge_status,
        id_at: unsafe extern "C" fn(
            *mut *const c_char,
            *const sys::imgjudge_verdict,
            usize,
        ) -> sys::imgjudge_status,
    ) -> Vec<String> {
        let mut count = 0usize;
        // SAFETY: self.raw is a live verdict; the ids it owns are copied at once.
        if check(unsafe { count_of(&mut count, self.raw) }).is_err() {
            return Vec::new();
        }
        (0..count)
            .filter_map(|index| {
                let mut id = ptr::null();
                check(unsafe { id_at(&mut id, self.raw, index) })
                    .ok()
                    .map(|_| unsafe { owned_string(id) })
            })
            .collect()
    }

    /// The full verdict as one line of JSON (schema "imgjudge.verdict/2"),
    /// borrowed from the verdict.
    pub fn json(&self) -> Result<&str> {
        let mut json = ptr::null();
        let mut length = 0usize;
        check(unsafe { sys::imgjudge_verdict_json(&mut json, &mut length, self.raw) })?;
        // SAFETY: owned by the verdict, immutable, and lives as long as &self.
        let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), length) };
        std::str::from_utf8(bytes).map_err(|e| Error {
            status: Status::Internal,
            message: format!("verdict JSON is not UTF-8: {e}"),
        })
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        unsafe { sys::imgjudge_verdict_free(self.raw) }
    }
}

// ---------------------------------------------------------------------------

/// Cancels the calls it is passed to, from any thread.
pub struct CancelToken {
    raw: *mut sys::imgjudge_cancel_token,
}

// SAFETY: the token is an atomic flag; the C API allows cancel from any thread.
unsafe impl Send for CancelToken {}
unsafe impl Sync for CancelToken {}

impl CancelToken {
    pub fn new() -> Result<CancelToken> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::imgjudge_cancel_token_create(&mut raw) })?;
        Ok(CancelToken { raw })
    }

    /// Cancels every call given this token; irreversible.
    pub fn cancel(&self) {
        // Cannot fail on a live handle.
        let _ = check(unsafe { sys::imgjudge_cancel_token_cancel(self.raw) });
    }

    pub fn is_cancelled(&self) -> bool {
        let mut flag: c_int = 0;
        let _ = check(unsafe { sys::imgjudge_cancel_token_is_cancelled(&mut flag, self.raw) });
        flag != 0
    }
}

impl Drop for CancelToken {
    fn drop(&mut self) {
        unsafe { sys::imgjudge_cancel_token_free(self.raw) }
    }
}
