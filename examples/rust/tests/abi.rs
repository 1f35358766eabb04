//! The hand-written declarations in src/sys.rs against the C ABI: the
//! library's own initialisers must agree with the Rust struct layouts.
use imgjudge::sys;
use std::mem::MaybeUninit;

#[test]
fn judge_options_layout_matches_the_library() {
    let mut options = MaybeUninit::<sys::imgjudge_judge_options>::zeroed();
    let status = unsafe {
        sys::imgjudge_judge_options_init(options.as_mut_ptr(), sys::IMGJUDGE_JUDGE_OPTIONS_VERSION)
    };
    assert_eq!(status, sys::IMGJUDGE_OK);
    let options = unsafe { options.assume_init() };
    assert_eq!(options.version, sys::IMGJUDGE_JUDGE_OPTIONS_VERSION);
    assert!(options.backend.is_null() && options.dtype.is_null());
    assert_eq!(options.threads, 0);
    assert_eq!(
        (options.relevance, options.debias, options.chains, options.cascade, options.early_exit),
        (1, 1, 1, 1, 1)
    );
    assert_eq!((options.max_image_bytes, options.max_image_width), (0, 0));
    assert_eq!((options.max_image_height, options.max_image_pixels), (0, 0));
    // Layout 2: the locator model folder (none), strategy 2 on, the library's
    // reasoning budget.
    assert!(options.locator_model_dir.is_null());
    assert_eq!((options.locator, options.reasoning_tokens), (1, 0));
    // Layout 3: the library's image memory budget.
    assert_eq!(options.image_memory_mb, 0);
    // u32 + 4 padding + 6 pointers + 6 ints + u64 + 2 u32 + u64, then
    // a pointer and 2 ints (layout 2) and a u64 (layout 3), on LP64.
    assert_eq!(std::mem::size_of::<sys::imgjudge_judge_options>(), 128);
}

#[test]
fn call_options_layout_matches_the_library() {
    let mut options = MaybeUninit::<sys::imgjudge_call_options>::zeroed();
    let status = unsafe {
        sys::imgjudge_call_options_init(options.as_mut_ptr(), sys::IMGJUDGE_CALL_OPTIONS_VERSION)
    };
    assert_eq!(status, sys::IMGJUDGE_OK);
    let options = unsafe { options.assume_init() };
    assert_eq!(options.version, sys::IMGJUDGE_CALL_OPTIONS_VERSION);
    assert_eq!(options.deadline_ms, 0);
    assert!(options.cancel.is_null());
    assert_eq!(std::mem::size_of::<sys::imgjudge_call_options>(), 24);
}

#[test]
fn models_options_layout_matches_the_header() {
    // u32 + 4 padding + 7 pointers + int + 4 padding + u64, on LP64; the
    // header's IMGJUDGE_MODELS_OPTIONS_INIT has no init function to compare with.
    assert_eq!(std::mem::size_of::<sys::imgjudge_models_options>(), 80);
    assert_eq!(std::mem::offset_of!(sys::imgjudge_models_options, threads), 64);
    assert_eq!(std::mem::offset_of!(sys::imgjudge_models_options, image_memory_mb), 72);
    assert_eq!(sys::IMGJUDGE_MODELS_OPTIONS_VERSION, 1);
}
