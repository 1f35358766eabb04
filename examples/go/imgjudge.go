// Package imgjudge binds the imgjudge C API (capi/imgjudge.h, docs/c-api.md):
// zero-shot image-safety judging with multimodal LLMs.
//
// Handles own their C objects: call Close when done (a finalizer frees them
// otherwise). Constitution, Judge and Verdict are safe for concurrent use, as
// the C API promises. Calls take a context.Context: its deadline becomes the
// call's deadline and its cancellation cancels the call.
//
// Build with the library's include and library folders, e.g. from a build tree:
//
//	CGO_CFLAGS="-I$BUILD/capi/include" CGO_LDFLAGS="-L$BUILD/capi -Wl,-rpath,$BUILD/capi" go test
package imgjudge

/*
#cgo LDFLAGS: -limgjudge
#include <stdlib.h>
#include <imgjudge/imgjudge.h>
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// Status is a C API status code; the values are pinned.
type Status int

const (
	InvalidArgument     Status = 1
	InvalidConstitution Status = 2
	InvalidImage        Status = 3
	LimitExceeded       Status = 4
	InvalidModel        Status = 5
	Unsupported         Status = 6
	Io                  Status = 7
	DeadlineExceeded    Status = 8
	Cancelled           Status = 9
	OutOfMemory         Status = 10
	Backend             Status = 11
	Internal            Status = 12
)

// String is the library's stable name, e.g. "invalid_image".
func (s Status) String() string { return C.GoString(C.imgjudge_status_name(C.int(s))) }

// Error is a failed call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s [%s]", e.Message, e.Status) }

// call runs one C call and turns a failure into *Error. The last-error
// message is per OS thread, so the goroutine stays on its thread until the
// message is read.
func call(f func() C.imgjudge_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	status := f()
	if status == C.IMGJUDGE_OK {
		return nil
	}
	return &Error{Status: Status(status), Message: C.GoString(C.imgjudge_last_error_message())}
}

// Version of the loaded library, e.g. "0.1.0".
func Version() string { return C.GoString(C.imgjudge_version()) }

// Constitution is a validated set of safety rules.
type Constitution struct{ raw *C.imgjudge_constitution }

func newConstitution(raw *C.imgjudge_constitution) *Constitution {
	c := &Constitution{raw: raw}
	runtime.SetFinalizer(c, (*Constitution).Close)
	return c
}

// LoadConstitutionFile reads and validates a TOML file.
func LoadConstitutionFile(path string) (*Constitution, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var raw *C.imgjudge_constitution
	if err := call(func() C.imgjudge_status { return C.imgjudge_constitution_load_file(&raw, cpath) }); err != nil {
		return nil, err
	}
	return newConstitution(raw), nil
}

// ParseConstitution parses TOML text; sourceName is used in error messages.
func ParseConstitution(toml, sourceName string) (*Constitution, error) {
	ctext := C.CString(toml)
	defer C.free(unsafe.Pointer(ctext))
	csource := C.CString(sourceName)
	defer C.free(unsafe.Pointer(csource))
	var raw *C.imgjudge_constitution
	err := call(func() C.imgjudge_status {
		return C.imgjudge_constitution_load_string(&raw, ctext, C.size_t(len(toml)), csource)
	})
	if err != nil {
		return nil, err
	}
	return newConstitution(raw), nil
}

// DefaultConstitution is the constitution bundled with imgjudge.
func DefaultConstitution() (*Constitution, error) {
	var raw *C.imgjudge_constitution
	if err := call(func() C.imgjudge_status { return C.imgjudge_constitution_load_default(&raw) }); err != nil {
		return nil, err
	}
	return newConstitution(raw), nil
}

// RuleIDs lists the rule ids in file order.
func (c *Constitution) RuleIDs() ([]string, error) {
	defer runtime.KeepAlive(c)
	var count C.size_t
	if err := call(func() C.imgjudge_status { return C.imgjudge_constitution_rule_count(&count, c.raw) }); err != nil {
		return nil, err
	}
	ids := make([]string, 0, int(count))
	for i := C.size_t(0); i < count; i++ {
		var id *C.char
		if err := call(func() C.imgjudge_status { return C.imgjudge_constitution_rule_id(&id, c.raw, i) }); err != nil {
			return nil, err
		}
		ids = append(ids, C.GoString(id))
	}
	return ids, nil
}

// Hash is "sha256:<hex>" of the normalized constitution.
func (c *Constitution) Hash() (string, error) {
	defer runtime.KeepAlive(c)
	var hash *C.char
	if err := call(func() C.imgjudge_status { return C.imgjudge_constitution_hash(&hash, c.raw) }); err != nil {
		return "", err
	}
	return C.GoString(hash), nil
}

// Close frees the constitution; judges made from it stay valid. Idempotent.
func (c *Constitution) Close() {
	C.imgjudge_constitution_free(c.raw)
	c.raw = nil
	runtime.SetFinalizer(c, nil)
}

// ModelOptions says which models to load and how to run them (the C
// imgjudge_models_options). The zero value is the C defaults (torch backend, CPU).
type ModelOptions struct {
	Backend           string // "torch" (default) or "scripted"
	ModelDir          string // Hugging Face folder of the multimodal LLM
	RelevanceModelDir string // CLIP/SigLIP folder, optional
	LocatorModelDir   string // OWLv2/OWL-ViT folder for strategy 2, optional
	ScriptPath        string // scripted backend: its answer script
	Device            string // "cpu" (default) or "cuda[:N]"
	Dtype             string // "auto" (default), "float32", "bfloat16", "int8"
	Threads           int    // 0 = all cores

	ImageMemoryMB uint64 // memory one image may take in the model; 0 = default (half the RAM, at most 8192)
}

// JudgeOptions configures a judge: the models to load (left zero for
// NewJudgeWithModels) and the method's switches and limits. The zero value is
// the C defaults (every stage on); the Disable* fields are ablations.
type JudgeOptions struct {
	Models ModelOptions

	DisableRelevance, DisableDebias, DisableChains, DisableCascade, DisableEarlyExit, DisableLocator bool

	ReasoningTokens int // token budget of each cascaded-reasoning turn; 0 = default (512)

	MaxImageBytes, MaxImagePixels uint64 // 0 = default
	MaxImageWidth, MaxImageHeight uint32 // 0 = default
}

// cStrings holds C copies of option strings until free.
type cStrings []*C.char

func (s *cStrings) optional(value string) *C.char {
	if value == "" {
		return nil
	}
	c := C.CString(value)
	*s = append(*s, c)
	return c
}

func (s *cStrings) free() {
	for _, c := range *s {
		C.free(unsafe.Pointer(c))
	}
}

// Models are loaded once and shared by many judges: two constitutions over
// one 2B model hold one copy of its weights. The C side counts references, so
// Close may come before or after the judges made from it are closed.
type Models struct{ raw *C.imgjudge_models }

// LoadModels loads the models (seconds; the weights are copied into memory).
func LoadModels(options ModelOptions) (*Models, error) {
	var strings cStrings
	defer strings.free()
	c := C.imgjudge_models_options{version: C.IMGJUDGE_MODELS_OPTIONS_VERSION}
	c.backend = strings.optional(options.Backend)
	c.model_dir = strings.optional(options.ModelDir)
	c.relevance_model_dir = strings.optional(options.RelevanceModelDir)
	c.locator_model_dir = strings.optional(options.LocatorModelDir)
	c.script_path = strings.optional(options.ScriptPath)
	c.device = strings.optional(options.Device)
	c.dtype = strings.optional(options.Dtype)
	c.threads = C.int(options.Threads)
	c.image_memory_mb = C.uint64_t(options.ImageMemoryMB)
	var raw *C.imgjudge_models
	if err := call(func() C.imgjudge_status { return C.imgjudge_models_load(&raw, &c) }); err != nil {
		return nil, err
	}
	m := &Models{raw: raw}
	runtime.SetFinalizer(m, (*Models).Close)
	return m, nil
}

// Close releases this handle; judges made from it keep the models. Idempotent.
func (m *Models) Close() {
	C.imgjudge_models_free(m.raw)
	m.raw = nil
	runtime.SetFinalizer(m, nil)
}

// Judge judges images against a constitution; safe for concurrent use.
type Judge struct{ raw *C.imgjudge_judge }

func flag(disabled bool) C.int {
	if disabled {
		return 0
	}
	return 1
}

// NewJudge loads the models and prepares everything image-independent. To
// judge by several constitutions, use LoadModels once and NewJudgeWithModels.
func NewJudge(constitution *Constitution, options JudgeOptions) (*Judge, error) {
	return createJudge(constitution, nil, options)
}

// NewJudgeWithModels makes a judge over already loaded models.
// options.Models must stay zero: the library refuses a model field, naming it.
func NewJudgeWithModels(constitution *Constitution, models *Models, options JudgeOptions) (*Judge, error) {
	if models == nil || models.raw == nil {
		return nil, &Error{Status: InvalidArgument, Message: "models is nil or closed"}
	}
	return createJudge(constitution, models, options)
}

func createJudge(constitution *Constitution, models *Models, options JudgeOptions) (*Judge, error) {
	defer runtime.KeepAlive(constitution)
	defer runtime.KeepAlive(models)
	var strings cStrings
	defer strings.free()
	var c C.imgjudge_judge_options
	if err := call(func() C.imgjudge_status {
		return C.imgjudge_judge_options_init(&c, C.IMGJUDGE_JUDGE_OPTIONS_VERSION)
	}); err != nil {
		return nil, err
	}
	m := options.Models
	c.backend = strings.optional(m.Backend)
	c.model_dir = strings.optional(m.ModelDir)
	c.relevance_model_dir = strings.optional(m.RelevanceModelDir)
	c.locator_model_dir = strings.optional(m.LocatorModelDir)
	c.script_path = strings.optional(m.ScriptPath)
	c.device = strings.optional(m.Device)
	c.dtype = strings.optional(m.Dtype)
	c.threads = C.int(m.Threads)
	c.image_memory_mb = C.uint64_t(m.ImageMemoryMB)
	c.relevance = flag(options.DisableRelevance)
	c.debias = flag(options.DisableDebias)
	c.chains = flag(options.DisableChains)
	c.cascade = flag(options.DisableCascade)
	c.early_exit = flag(options.DisableEarlyExit)
	c.locator = flag(options.DisableLocator)
	c.reasoning_tokens = C.int(options.ReasoningTokens)
	c.max_image_bytes = C.uint64_t(options.MaxImageBytes)
	c.max_image_width = C.uint32_t(options.MaxImageWidth)
	c.max_image_height = C.uint32_t(options.MaxImageHeight)
	c.max_image_pixels = C.uint64_t(options.MaxImagePixels)

	var raw *C.imgjudge_judge
	create := func() C.imgjudge_status { return C.imgjudge_judge_create(&raw, constitution.raw, &c) }
	if models != nil {
		create = func() C.imgjudge_status {
			return C.imgjudge_judge_create_with_models(&raw, constitution.raw, models.raw, &c)
		}
	}
	if err := call(create); err != nil {
		return nil, err
	}
	j := &Judge{raw: raw}
	runtime.SetFinalizer(j, (*Judge).Close)
	return j, nil
}

// Close frees the judge; no call may be running. Idempotent.
func (j *Judge) Close() {
	C.imgjudge_judge_free(j.raw)
	j.raw = nil
	runtime.SetFinalizer(j, nil)
}

// withCall runs f with call options from ctx: its deadline, and a cancel
// token cancelled when ctx is done.
func withCall(ctx context.Context, f func(*C.imgjudge_call_options) C.imgjudge_status) error {
	if err := ctx.Err(); err != nil {
		return &Error{Status: Cancelled, Message: err.Error()}
	}
	var options C.imgjudge_call_options
	if err := call(func() C.imgjudge_status {
		return C.imgjudge_call_options_init(&options, C.IMGJUDGE_CALL_OPTIONS_VERSION)
	}); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok {
		ms := time.Until(deadline).Milliseconds()
		if ms < 1 {
			ms = 1 // 0 would mean "no deadline"
		}
		options.deadline_ms = C.int64_t(ms)
	}
	if ctx.Done() != nil {
		var token *C.imgjudge_cancel_token
		if err := call(func() C.imgjudge_status { return C.imgjudge_cancel_token_create(&token) }); err != nil {
			return err
		}
		finished := make(chan struct{})
		watcher := make(chan struct{})
		go func() {
			defer close(watcher)
			select {
			case <-ctx.Done():
				C.imgjudge_cancel_token_cancel(token)
			case <-finished:
			}
		}()
		defer func() {
			close(finished)
			<-watcher // the watcher no longer touches the token
			C.imgjudge_cancel_token_free(token)
		}()
		options.cancel = token
	}
	return call(func() C.imgjudge_status { return f(&options) })
}

// JudgeBytes judges encoded image bytes (JPEG, PNG, WebP, GIF).
func (j *Judge) JudgeBytes(ctx context.Context, image []byte) (*Verdict, error) {
	defer runtime.KeepAlive(j)
	var raw *C.imgjudge_verdict
	var data unsafe.Pointer
	if len(image) > 0 {
		data = unsafe.Pointer(&image[0])
	}
	err := withCall(ctx, func(options *C.imgjudge_call_options) C.imgjudge_status {
		return C.imgjudge_judge_bytes(&raw, j.raw, data, C.size_t(len(image)), options)
	})
	runtime.KeepAlive(image)
	return newVerdict(raw, err)
}

// JudgeFile reads and judges an image file.
func (j *Judge) JudgeFile(ctx context.Context, path string) (*Verdict, error) {
	defer runtime.KeepAlive(j)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var raw *C.imgjudge_verdict
	err := withCall(ctx, func(options *C.imgjudge_call_options) C.imgjudge_status {
		return C.imgjudge_judge_file(&raw, j.raw, cpath, options)
	})
	return newVerdict(raw, err)
}

// JudgeRGB judges 8-bit RGB pixels whose rows are stride bytes apart.
func (j *Judge) JudgeRGB(ctx context.Context, pixels []byte, width, height, stride int) (*Verdict, error) {
	defer runtime.KeepAlive(j)
	// The C side trusts the buffer to hold height rows: check it here.
	if width > 0 && height > 0 && stride >= 3*width && len(pixels) < (height-1)*stride+3*width {
		return nil, &Error{Status: InvalidArgument, Message: fmt.Sprintf(
			"%d bytes of pixels are too few for %dx%d with stride %d", len(pixels), width, height, stride)}
	}
	var data *C.uint8_t
	if len(pixels) > 0 {
		data = (*C.uint8_t)(unsafe.Pointer(&pixels[0]))
	}
	var raw *C.imgjudge_verdict
	err := withCall(ctx, func(options *C.imgjudge_call_options) C.imgjudge_status {
		return C.imgjudge_judge_rgb(&raw, j.raw, data, C.int(width), C.int(height), C.size_t(stride), options)
	})
	runtime.KeepAlive(pixels)
	return newVerdict(raw, err)
}

// Verdict is the immutable result for one image; safe for concurrent use.
type Verdict struct{ raw *C.imgjudge_verdict }

func newVerdict(raw *C.imgjudge_verdict, err error) (*Verdict, error) {
	if err != nil {
		return nil, err
	}
	v := &Verdict{raw: raw}
	runtime.SetFinalizer(v, (*Verdict).Close)
	return v, nil
}

// Unsafe reports whether the image violates at least one rule.
func (v *Verdict) Unsafe() bool {
	defer runtime.KeepAlive(v)
	flag := C.int(1) // stays "unsafe" if the call failed
	C.imgjudge_verdict_unsafe(&flag, v.raw)
	return flag != 0
}

// NeedsReview reports whether no rule is violated but one stayed uncertain
// under `uncertain = "review"`: route the image to a person.
func (v *Verdict) NeedsReview() bool {
	defer runtime.KeepAlive(v)
	decision := C.imgjudge_decision(C.IMGJUDGE_DECISION_UNSAFE)
	C.imgjudge_verdict_decision(&decision, v.raw)
	return decision == C.IMGJUDGE_DECISION_REVIEW
}

// ViolatedRules lists the violated rule ids in constitution order.
func (v *Verdict) ViolatedRules() []string {
	defer runtime.KeepAlive(v)
	var count C.size_t
	C.imgjudge_verdict_violated_rule_count(&count, v.raw)
	ids := make([]string, 0, int(count))
	for i := C.size_t(0); i < count; i++ {
		var id *C.char
		if C.imgjudge_verdict_violated_rule_id(&id, v.raw, i) == C.IMGJUDGE_OK {
			ids = append(ids, C.GoString(id))
		}
	}
	return ids
}

// ReviewRules lists the ids of rules that stayed uncertain under
// `uncertain = "review"`, in constitution order.
func (v *Verdict) ReviewRules() []string {
	defer runtime.KeepAlive(v)
	var count C.size_t
	C.imgjudge_verdict_review_rule_count(&count, v.raw)
	ids := make([]string, 0, int(count))
	for i := C.size_t(0); i < count; i++ {
		var id *C.char
		if C.imgjudge_verdict_review_rule_id(&id, v.raw, i) == C.IMGJUDGE_OK {
			ids = append(ids, C.GoString(id))
		}
	}
	return ids
}

// JSON is the full verdict, schema "imgjudge.verdict/2".
func (v *Verdict) JSON() (string, error) {
	defer runtime.KeepAlive(v)
	var json *C.char
	var length C.size_t
	if err := call(func() C.imgjudge_status { return C.imgjudge_verdict_json(&json, &length, v.raw) }); err != nil {
		return "", err
	}
	return C.GoStringN(json, C.int(length)), nil
}

// Close frees the verdict. Idempotent.
func (v *Verdict) Close() {
	C.imgjudge_verdict_free(v.raw)
	v.raw = nil
	runtime.SetFinalizer(v, nil)
}
