//! Raw declarations of capi/imgjudge.h, written by hand (no bindgen crate is
//! available offline). Keep in the header's order; `tests/abi.rs` checks the
//! struct layouts and constants that the header pins.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

/// `imgjudge_status`: received as a plain int, since a library newer than
/// these bindings may return a code they do not know.
pub type imgjudge_status = c_int;

pub const IMGJUDGE_OK: imgjudge_status = 0;
pub const IMGJUDGE_JUDGE_OPTIONS_VERSION: c_uint = 3;
pub const IMGJUDGE_CALL_OPTIONS_VERSION: c_uint = 1;
pub const IMGJUDGE_MODELS_OPTIONS_VERSION: c_uint = 1;
pub const IMGJUDGE_DECISION_SAFE: c_int = 0;
pub const IMGJUDGE_DECISION_UNSAFE: c_int = 1;
pub const IMGJUDGE_DECISION_REVIEW: c_int = 2;

#[repr(C)]
pub struct imgjudge_constitution {
    _private: [u8; 0],
}
#[repr(C)]
pub struct imgjudge_judge {
    _private: [u8; 0],
}
#[repr(C)]
pub struct imgjudge_verdict {
    _private: [u8; 0],
}
#[repr(C)]
pub struct imgjudge_cancel_token {
    _private: [u8; 0],
}
#[repr(C)]
pub struct imgjudge_models {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct imgjudge_judge_options {
    pub version: c_uint,
    pub backend: *const c_char,
    pub model_dir: *const c_char,
    pub relevance_model_dir: *const c_char,
    pub script_path: *const c_char,
    pub device: *const c_char,
    pub dtype: *const c_char,
    pub threads: c_int,
    pub relevance: c_int,
    pub debias: c_int,
    pub chains: c_int,
    pub cascade: c_int,
    pub early_exit: c_int,
    pub max_image_bytes: u64,
    pub max_image_width: u32,
    pub max_image_height: u32,
    pub max_image_pixels: u64,
    // Layout 2.
    pub locator_model_dir: *const c_char,
    pub locator: c_int,
    pub reasoning_tokens: c_int,
    // Layout 3.
    pub image_memory_mb: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct imgjudge_models_options {
    pub version: c_uint,
    pub backend: *const c_char,
    pub model_dir: *const c_char,
    pub relevance_model_dir: *const c_char,
    pub locator_model_dir: *const c_char,
    pub script_path: *const c_char,
    pub device: *const c_char,
    pub dtype: *const c_char,
    pub threads: c_int,
    pub image_memory_mb: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct imgjudge_call_options {
    pub version: c_uint,
    pub deadline_ms: i64,
    pub cancel: *const imgjudge_cancel_token,
}

extern "C" {
    pub fn imgjudge_version() -> *const c_char;
    pub fn imgjudge_version_number() -> c_uint;
    pub fn imgjudge_status_name(status: c_int) -> *const c_char;
    pub fn imgjudge_last_error_message() -> *const c_char;
    pub fn imgjudge_last_error_code() -> imgjudge_status;
    pub fn imgjudge_last_error_clear();

    pub fn imgjudge_constitution_load_file(
        out: *mut *mut imgjudge_constitution,
        path: *const c_char,
    ) -> imgjudge_status;
    pub fn imgjudge_constitution_load_string(
        out: *mut *mut imgjudge_constitution,
        toml: *const c_char,
        length: usize,
        source_name: *const c_char,
    ) -> imgjudge_status;
    pub fn imgjudge_constitution_load_default(out: *mut *mut imgjudge_constitution) -> imgjudge_status;
    pub fn imgjudge_constitution_free(constitution: *mut imgjudge_constitution);
    pub fn imgjudge_constitution_rule_count(
        out_count: *mut usize,
        constitution: *const imgjudge_constitution,
    ) -> imgjudge_status;
    pub fn imgjudge_constitution_rule_id(
        out_id: *mut *const c_char,
        constitution: *const imgjudge_constitution,
        index: usize,
    ) -> imgjudge_status;
    pub fn imgjudge_constitution_hash(
        out_hash: *mut *const c_char,
        constitution: *const imgjudge_constitution,
    ) -> imgjudge_status;

    pub fn imgjudge_judge_options_init(options: *mut imgjudge_judge_options, version: c_uint)
        -> imgjudge_status;
    pub fn imgjudge_call_options_init(options: *mut imgjudge_call_options, version: c_uint)
        -> imgjudge_status;

    pub fn imgjudge_judge_create(
        out: *mut *mut imgjudge_judge,
        constitution: *const imgjudge_constitution,
        options: *const imgjudge_judge_options,
    ) -> imgjudge_status;
    pub fn imgjudge_judge_free(judge: *mut imgjudge_judge);

    pub fn imgjudge_models_load(
        out: *mut *mut imgjudge_models,
        options: *const imgjudge_models_options,
    ) -> imgjudge_status;
    pub fn imgjudge_models_free(models: *mut imgjudge_models);
    pub fn imgjudge_judge_create_with_models(
        out: *mut *mut imgjudge_judge,
        constitution: *const imgjudge_constitution,
        models: *const imgjudge_models,
        options: *const imgjudge_judge_options,
    ) -> imgjudge_status;

    pub fn imgjudge_judge_bytes(
        out: *mut *mut imgjudge_verdict,
        judge: *const imgjudge_judge,
        bytes: *const c_void,
        size: usize,
        call: *const imgjudge_call_options,
    ) -> imgjudge_status;
    pub fn imgjudge_judge_file(
        out: *mut *mut imgjudge_verdict,
        judge: *const imgjudge_judge,
        path: *const c_char,
        call: *const imgjudge_call_options,
    ) -> imgjudge_status;
    pub fn imgjudge_judge_rgb(
        out: *mut *mut imgjudge_verdict,
        judge: *const imgjudge_judge,
        pixels: *const u8,
        width: c_int,
        height: c_int,
        stride: usize,
        call: *const imgjudge_call_options,
    ) -> imgjudge_status;

    pub fn imgjudge_verdict_free(verdict: *mut imgjudge_verdict);
    pub fn imgjudge_verdict_decision(out_decision: *mut c_int, verdict: *const imgjudge_verdict)
        -> imgjudge_status;
    pub fn imgjudge_verdict_unsafe(out_unsafe: *mut c_int, verdict: *const imgjudge_verdict)
        -> imgjudge_status;
    pub fn imgjudge_verdict_violated_rule_count(
        out_count: *mut usize,
        verdict: *const imgjudge_verdict,
    ) -> imgjudge_status;
    pub fn imgjudge_verdict_violated_rule_id(
        out_id: *mut *const c_char,
        verdict: *const imgjudge_verdict,
        index: usize,
    ) -> imgjudge_status;
    pub fn imgjudge_verdict_review_rule_count(
        out_count: *mut usize,
        verdict: *const imgjudge_verdict,
    ) -> imgjudge_status;
    pub fn imgjudge_verdict_review_rule_id(
        out_id: *mut *const c_char,
        verdict: *const imgjudge_verdict,
        index: usize,
    ) -> imgjudge_status;
    pub fn imgjudge_verdict_json(
        out_json: *mut *const c_char,
        out_length: *mut usize,
        verdict: *const imgjudge_verdict,
    ) -> imgjudge_status;

    pub fn imgjudge_cancel_token_create(out: *mut *mut imgjudge_cancel_token) -> imgjudge_status;
    pub fn imgjudge_cancel_token_cancel(token: *mut imgjudge_cancel_token) -> imgjudge_status;
    pub fn imgjudge_cancel_token_is_cancelled(
        out_cancelled: *mut c_int,
        token: *const imgjudge_cancel_token,
    ) -> imgjudge_status;
    pub fn imgjudge_cancel_token_free(token: *mut imgjudge_cancel_token);
}
