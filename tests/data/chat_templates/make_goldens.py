#!/usr/bin/env python3
"""Renders every *.jinja template of this folder the way transformers' apply_chat_template
does (jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, the {% generation %}
tag rendering its body, raise_exception, tojson) and writes goldens.json, which
tests/unit/test_tokenizer_chat.cpp reads.

The templates are the published ones (sources in docs/tokenizers.md). Vision templates
get typed content lists, text templates plain-string content (what their callers pass).
Run: python3 make_goldens.py   (needs jinja2 >= 3.1)
"""
import json
import pathlib

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).resolve().parent

# name -> (style our detector must report or None for "refused", bos, eos, text-only)
TEMPLATES = {
    "qwen2_vl": ("qwen2_vl", "", "", False),
    "llava_onevision": ("llava_chatml", "", "", False),
    "llava_onevision_old": ("llava_chatml", "", "", False),
    "llava_next_34b": ("llava_chatml", "<|startoftext|>", "<|endoftext|>", False),
    "llava15": ("llava_vicuna", "<s>", "</s>", False),
    "llava15_fix": ("llava_vicuna", "<s>", "</s>", False),
    "llava15_original": (None, "<s>", "</s>", False),
    "llava_next_mistral": ("llava_mistral", "<s>", "</s>", False),
    "llava_next_mistral_old": ("llava_mistral", "<s>", "</s>", False),
    "llava_next_mistral_eos": ("llava_mistral", "<s>", "</s>", False),
    "llama3_llava_next": ("llava_llama3", "<|begin_of_text|>", "<|eot_id|>", False),
    "qwen2_5_instruct": ("chatml", "", "<|im_end|>", True),
    "llama3_1_instruct": ("llama3", "<|begin_of_text|>", "<|eot_id|>", True),
    "mistral_v02_instruct": ("mistral", "<s>", "</s>", True),
    "mistral_v02_instruct_old": ("mistral", "<s>", "</s>", True),
    "llama2_default": (None, "<s>", "</s>", True),
    "yi_chat": (None, "<|startoftext|>", "<|im_end|>", True),
}

IMAGE = {"type": "image"}


def text(t):
    return {"type": "text", "text": t}


# (name, messages as typed content, add_generation_prompt)
CASES = [
    ("question", [{"role": "user", "content": [IMAGE, text("Is it? Statement: X")]}], True),
    ("question_no_prompt", [{"role": "user", "content": [IMAGE, text("Is it? Statement: X")]}], False),
    ("text_only", [{"role": "user", "content": [text("Hi")]}], True),
    ("two_images", [{"role": "user", "content": [IMAGE, text("Same? "), IMAGE, text("Say yes.")]}], True),
    ("conversation", [
        {"role": "system", "content": [text("S")]},
        {"role": "user", "content": [IMAGE, text("Q")]},
        {"role": "assistant", "content": [text("A")]},
        {"role": "user", "content": [text("Q2")]},
    ], True),
    ("no_system_turns", [
        {"role": "user", "content": [IMAGE, text("  Q with spaces  ")]},
        {"role": "assistant", "content": [text("A")]},
        {"role": "user", "content": [text("Q2")]},
    ], True),
]


class Generation(Extension):
    """transformers' {% generation %} marks assistant text; it renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = raise_exception
    return env


def as_strings(messages):
    """Text templates take string content: the text items joined, images dropped."""
    return [{"role": m["role"], "content": "".join(c["text"] for c in m["content"] if c["type"] == "text")}
            for m in messages]


def main():
    env = environment()
    out = []
    for name, (style, bos, eos, text_only) in TEMPLATES.items():
        source = (HERE / f"{name}.jinja").read_text()
        template = env.from_string(source)
        cases = []
        for case_name, messages, generation_prompt in CASES:
            if text_only and any(c["type"] == "image" for m in messages for c in m["content"]):
                continue  # our renderer refuses images in a text template
            try:
                rendered = template.render(messages=as_strings(messages) if text_only else messages,
                                           add_generation_prompt=generation_prompt, bos_token=bos, eos_token=eos)
                result = {"expected": rendered}
            except (jinja2.exceptions.TemplateError, TypeError) as error:
                result = {"error": str(error)}
            cases.append({"name": case_name, "messages": messages, "add_generation_prompt": generation_prompt, **result})
        # Text templates: the vision cases with the images removed, so they run too.
        if text_only:
            for case_name, messages, generation_prompt in CASES:
                stripped = [{"role": m["role"], "content": [c for c in m["content"] if c["type"] == "text"]}
                            for m in messages]
                try:
                    rendered = template.render(messages=as_strings(stripped), add_generation_prompt=generation_prompt,
                                               bos_token=bos, eos_token=eos)
                    result = {"expected": rendered}
                except (jinja2.exceptions.TemplateError, TypeError) as error:
                    result = {"error": str(error)}
                cases.append({"name": case_name + "_text", "messages": stripped,
                              "add_generation_prompt": generation_prompt, **result})
        out.append({"name": name, "file": f"{name}.jinja", "style": style, "bos": bos, "eos": eos, "cases": cases})
    (HERE / "goldens.json").write_text(json.dumps({"jinja2": jinja2.__version__, "templates": out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
