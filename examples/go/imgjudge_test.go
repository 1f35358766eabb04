package imgjudge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const rules = `schema_version = 1
name = "go-test"
version = "1"

[[rules]]
id = "test.fire"
category = "danger"
text = "No burning buildings."
objective_text = "A building is on fire."
chain = [
  { any_of = ["A building is visible in the image."] },
  { any_of = ["Flames are visible on the building."] },
]
`

func images(t *testing.T) string {
	dir, err := filepath.Abs("../images")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// newJudge: rocket.jpg is scripted as a burning building (prior 0.2, scores
// above 0.84 are accepted); other images score 0.5 and end up safe.
func newJudge(t *testing.T) *Judge {
	script := writeScript(t)
	constitution, err := ParseConstitution(rules, "go-test.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer constitution.Close() // the judge keeps its own copy
	judge, err := NewJudge(constitution, JudgeOptions{Models: ModelOptions{Backend: "scripted", ScriptPath: script}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(judge.Close)
	return judge
}

func writeScript(t *testing.T) string {
	script := filepath.Join(t.TempDir(), "script.toml")
	text := "[defaults]\nprior = 0.2\n\n[[images]]\nfile = \"" + filepath.Join(images(t), "rocket.jpg") +
		"\"\nscores = { \"A building is visible in the image.\" = 0.95, \"Flames are visible on the building.\" = 0.97 }\n"
	if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}

func status(err error) Status {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestJudgesFilesBytesAndPixels(t *testing.T) {
	judge := newJudge(t)
	ctx := context.Background()

	rocket, err := judge.JudgeFile(ctx, filepath.Join(images(t), "rocket.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer rocket.Close()
	if !rocket.Unsafe() || strings.Join(rocket.ViolatedRules(), ",") != "test.fire" {
		t.Fatalf("rocket: unsafe=%v rules=%v", rocket.Unsafe(), rocket.ViolatedRules())
	}
	json, err := rocket.JSON()
	if err != nil || !strings.Contains(json, `"schema":"imgjudge.verdict/2"`) {
		t.Fatalf("json %q, %v", json, err)
	}

	cat, err := os.ReadFile(filepath.Join(images(t), "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	verdict, err := judge.JudgeBytes(ctx, cat)
	if err != nil || verdict.Unsafe() || len(verdict.ViolatedRules()) != 0 {
		t.Fatalf("chelsea: %v", err)
	}

	pixels := make([]byte, (2-1)*20+4*3)
	verdict, err = judge.JudgeRGB(ctx, pixels, 4, 2, 20)
	if err != nil || verdict.Unsafe() {
		t.Fatalf("rgb: %v", err)
	}
}

func TestErrorsCarryStatusAndMessage(t *testing.T) {
	judge := newJudge(t)
	ctx := context.Background()

	if _, err := judge.JudgeBytes(ctx, []byte("not an image")); status(err) != InvalidImage {
		t.Errorf("junk bytes: %v", err)
	}
	if _, err := judge.JudgeBytes(ctx, nil); status(err) != InvalidArgument {
		t.Errorf("no bytes: %v", err)
	}
	_, err := judge.JudgeFile(ctx, "/nonexistent/imgjudge.png")
	if status(err) != Io || !strings.Contains(err.Error(), "/nonexistent/imgjudge.png") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := judge.JudgeRGB(ctx, make([]byte, 5), 4, 2, 12); status(err) != InvalidArgument {
		t.Errorf("short pixel buffer: %v", err)
	}
	_, err = ParseConstitution("schema_version = 1\nname = = 1\n", "bad.toml")
	if status(err) != InvalidConstitution || !strings.HasPrefix(err.(*Error).Message, "bad.toml:2:") {
		t.Errorf("bad constitution: %v", err)
	}
	if InvalidConstitution.String() != "invalid_constitution" {
		t.Errorf("status name %q", InvalidConstitution.String())
	}
	constitution, _ := ParseConstitution(rules, "go-test.toml")
	defer constitution.Close()
	_, err = NewJudge(constitution, JudgeOptions{Models: ModelOptions{Backend: "nope"}})
	if status(err) != InvalidArgument || !strings.Contains(err.Error(), "unknown backend") {
		t.Errorf("unknown backend: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := judge.JudgeFile(cancelled, filepath.Join(images(t), "rocket.jpg")); status(err) != Cancelled {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestConstitution(t *testing.T) {
	constitution, err := ParseConstitution(rules, "go-test.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer constitution.Close()
	ids, err := constitution.RuleIDs()
	if err != nil || strings.Join(ids, ",") != "test.fire" {
		t.Errorf("rule ids %v, %v", ids, err)
	}
	if hash, err := constitution.Hash(); err != nil || !strings.HasPrefix(hash, "sha256:") {
		t.Errorf("hash %q, %v", hash, err)
	}
	builtin, err := DefaultConstitution()
	if err != nil {
		t.Fatal(err)
	}
	defer builtin.Close()
	if ids, _ := builtin.RuleIDs(); len(ids) < 5 {
		t.Errorf("default constitution has %d rules", len(ids))
	}
	if Version() == "" {
		t.Error("empty version")
	}
}

func TestOneJudgeManyGoroutines(t *testing.T) {
	judge := newJudge(t)
	rocket := filepath.Join(images(t), "rocket.jpg")
	ctx, cancel := context.WithCancel(context.Background()) // exercises the cancel-token path
	defer cancel()
	var wg sync.WaitGroup
	failures := make(chan error, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				verdict, err := judge.JudgeFile(ctx, rocket)
				if err != nil || !verdict.Unsafe() {
					failures <- err
					return
				}
				verdict.Close()
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("concurrent judging failed: %v", err)
	}
}

// The layout-2 options (locator, reasoning budget) reach the library.
func TestLocatorAndReasoningOptions(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script.toml")
	if err := os.WriteFile(script, []byte("[defaults]\nprior = 0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withObjects := strings.Replace(rules, `{ any_of = ["Flames are visible on the building."] }`,
		`{ any_of = ["Flames are visible on the building."], objects = ["flames"] }`, 1)
	constitution, err := ParseConstitution(withObjects, "go-objects.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer constitution.Close()
	rocket := filepath.Join(images(t), "rocket.jpg")

	judge, err := NewJudge(constitution, JudgeOptions{Models: ModelOptions{Backend: "scripted", ScriptPath: script},
		DisableLocator: true, ReasoningTokens: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer judge.Close()
	verdict, err := judge.JudgeFile(context.Background(), rocket)
	if err != nil {
		t.Fatal(err)
	}
	defer verdict.Close()
	if json, _ := verdict.JSON(); !strings.Contains(json, "strategy 2 off (ablation)") {
		t.Errorf("locator off but no ablation note: %s", json)
	}

	_, err = NewJudge(constitution, JudgeOptions{Models: ModelOptions{Backend: "scripted", ScriptPath: script}, ReasoningTokens: -1})
	if status(err) != InvalidArgument || !strings.Contains(err.Error(), "reasoning_tokens") {
		t.Errorf("negative reasoning budget: %v", err)
	}
	_, err = NewJudge(constitution, JudgeOptions{Models: ModelOptions{Backend: "scripted", ScriptPath: script, LocatorModelDir: "/x/owlv2"}})
	if status(err) != InvalidArgument || !strings.Contains(err.Error(), "locator_model_dir") {
		t.Errorf("a locator folder the scripted backend would ignore: %v", err)
	}
}

// Two constitutions over one models handle; the handle closed before the judges.
func TestModelsSharedByTwoJudges(t *testing.T) {
	models, err := LoadModels(ModelOptions{Backend: "scripted", ScriptPath: writeScript(t)})
	if err != nil {
		t.Fatal(err)
	}
	fire, _ := ParseConstitution(rules, "go-test.toml")
	defer fire.Close()
	other, _ := ParseConstitution(strings.ReplaceAll(rules, "test.fire", "test.other"), "other.toml")
	defer other.Close()
	first, err := NewJudgeWithModels(fire, models, JudgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := NewJudgeWithModels(other, models, JudgeOptions{DisableCascade: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	models.Close() // the judges hold their own references

	ctx := context.Background()
	rocket := filepath.Join(images(t), "rocket.jpg")
	for judge, want := range map[*Judge]string{first: "test.fire", second: "test.other"} {
		verdict, err := judge.JudgeFile(ctx, rocket)
		if err != nil {
			t.Fatal(err)
		}
		if got := verdict.ViolatedRules(); len(got) != 1 || got[0] != want {
			t.Errorf("violated %v, want [%s]", got, want)
		}
		verdict.Close()
	}
	// coffee.png scores 0.5 on both items: uncertain, and with reasoning off
	// the default policy (review) applies.
	verdict, err := second.JudgeFile(ctx, filepath.Join(images(t), "coffee.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer verdict.Close()
	if got := verdict.ReviewRules(); !verdict.NeedsReview() || len(got) != 1 || got[0] != "test.other" {
		t.Errorf("review %v (needs review %v)", got, verdict.NeedsReview())
	}

	_, err = NewJudgeWithModels(fire, models, JudgeOptions{})
	if status(err) != InvalidArgument {
		t.Errorf("a closed models handle: %v", err)
	}
	again, _ := LoadModels(ModelOptions{Backend: "scripted", ScriptPath: writeScript(t)})
	defer again.Close()
	_, err = NewJudgeWithModels(fire, again, JudgeOptions{Models: ModelOptions{ModelDir: "/models/x"}})
	if status(err) != InvalidArgument || !strings.Contains(err.Error(), "model_dir") {
		t.Errorf("a model field with loaded models: %v", err)
	}
	_, err = LoadModels(ModelOptions{ModelDir: "/nonexistent/imgjudge-model"})
	if status(err) != InvalidModel || !strings.Contains(err.Error(), "/nonexistent/imgjudge-model") {
		t.Errorf("missing model folder: %v", err)
	}
}
