#!/usr/bin/env python3
"""Goldens for tests/parity/test_owl.cpp: what the OWL fixtures do not cover.

Pure Python (no numpy/torch/scipy): the algorithms of transformers 4.50.3's
Owlv2ImageProcessor (rescale, pad 0.5, scipy gaussian_filter + zoom(order=1,
mirror, grid_mode) + clip, normalize), OwlViTImageProcessor (Pillow's fixed-point
resample on uint8, center crop), and the OWL forward (eager attention), written
from the HF sources; on the fixtures in owlv2/ and owlvit/ they reproduce
preprocess.safetensors bit for bit and outputs.safetensors within 2.5e-6.

Writes owl_goldens.safetensors next to this file:
  owlv2_downscale_pixels [3, 48, 48]  a 300x200 image (the gaussian at sigma 2.625)
  owlv2_upscale_pixels   [3, 32, 32]  a 30x20 image (mirrored zoom taps, no gaussian)
  owlvit_crop_pixels     [3, 32, 48]  a 61x37 image, bicubic to 40x44, center crop
                                      32x48 (zero columns where the crop overhangs)
  <kind>_masked_text_embeds [3, 24], <kind>_masked_logits [36, 3]
      the fixture model (owlv2/, owlvit/) on its own pixel_values with queries
      [bos eos], an all-zero row (attention_mask all 0), [bos 661 246 422 eos]
  <kind>_boxes_100x40 [36, 4]  post-processed corners of the fixture's pred_boxes
      for a 100 (high) x 40 (wide) original image
The test images come from pattern() below (the test has the same formula).
Run: python3 tests/data/parity-locator/make_owl_goldens.py   (about half a minute)
"""
import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
LOWEST = -3.4028234663852886e38


def f32(x):
    """Rounds to float32 (beyond its range: +-inf, as float32 arithmetic overflows)."""
    try:
        return struct.unpack('f', struct.pack('f', x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def load(path):
    blob = open(path, 'rb').read()
    n = struct.unpack('<Q', blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    codes = {'F32': 'f', 'I64': 'q', 'U8': 'B'}
    out = {}
    for name, v in header.items():
        if name == '__metadata__':
            continue
        s, e = v['data_offsets']
        count = (e - s) // struct.calcsize(codes[v['dtype']])
        out[name] = (v['shape'], list(struct.unpack('<%d%s' % (count, codes[v['dtype']]), blob[8 + n + s:8 + n + e])))
    return out


def save(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, (shape, values) in sorted(tensors.items()):
        data = struct.pack('<%df' % len(values), *values)
        header[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(chunks))


def pattern(height, width):
    """uint8 [y][x][c]: a deterministic texture (the test has the same formula)."""
    return [[[(3 * x * x + 5 * y * y + 7 * x * y + 71 * c + 9 * ((x ^ y) & 15)) % 256 for c in range(3)]
             for x in range(width)] for y in range(height)]


def normalize_chw(hwc, height, width):
    return [f32(f32(hwc[y][x][c] - f32(MEAN[c])) / f32(STD[c])) for c in range(3) for y in range(height)
            for x in range(width)]


# ---- Owlv2ImageProcessor ---------------------------------------------------------

def mirror(i, n):
    if n == 1:
        return 0
    period = 2 * n - 2
    i = abs(i) % period
    return i if i < n else period - i


def gaussian_line(line, sigma):
    """scipy.ndimage.gaussian_filter1d(mode='mirror', truncate=4), float32 output,
    the symmetric correlation of NI_Correlate1D (centre tap, then pairs outermost first)."""
    if sigma <= 1e-15:
        return line[:]
    r = int(4.0 * sigma + 0.5)
    w = [math.exp(-0.5 / (sigma * sigma) * k * k) for k in range(-r, r + 1)]
    total = sum(w)
    half = [w[r + k] / total for k in range(r + 1)]
    n = len(line)
    out = []
    for i in range(n):
        acc = line[i] * half[0]
        for j in range(r, 0, -1):
            acc += (line[mirror(i - j, n)] + line[mirror(i + j, n)]) * half[j]
        out.append(f32(acc))
    return out


def zoom_taps(n_in, n_out):
    z = n_in / n_out
    taps = []
    for k in range(n_out):
        c = (k + 0.5) * z - 0.5
        if n_in == 1:
            taps.append((0, 0, 1.0, 0.0))
            continue
        if c < 0:
            c = -c
        if c > n_in - 1:
            c = 2 * (n_in - 1) - c
        i0 = math.floor(c)
        t = c - i0
        i1 = i0 + 1
        if i1 > n_in - 1:
            i1 = 2 * (n_in - 1) - i1
        taps.append((i0, i1, 1 - t, 1 - (1 - t)))  # scipy: the last weight is 1 minus the others
    return taps


def owlv2_preprocess(img, h0, w0, out_h, out_w):
    side = max(h0, w0)
    im = [[[0.5] * 3 for _ in range(side)] for _ in range(side)]
    for y in range(h0):
        for x in range(w0):
            for c in range(3):
                im[y][x][c] = f32(img[y][x][c] * (1 / 255))
    lo = min(min(min(p) for p in row) for row in im)
    hi = max(max(max(p) for p in row) for row in im)
    sigma_h = max(0.0, (side / out_h - 1) / 2)
    sigma_w = max(0.0, (side / out_w - 1) / 2)
    for x in range(side):  # axis 0 first
        for c in range(3):
            col = gaussian_line([im[y][x][c] for y in range(side)], sigma_h)
            for y in range(side):
                im[y][x][c] = col[y]
    for y in range(side):  # then axis 1
        for c in range(3):
            row = gaussian_line([im[y][x][c] for x in range(side)], sigma_w)
            for x in range(side):
                im[y][x][c] = row[x]
    ty, tx = zoom_taps(side, out_h), zoom_taps(side, out_w)
    out = [[[0.0] * 3 for _ in range(out_w)] for _ in range(out_h)]
    for oy, (y0, y1, wy0, wy1) in enumerate(ty):
        for ox, (x0, x1, wx0, wx1) in enumerate(tx):
            for c in range(3):
                v = (im[y0][x0][c] * wy0 * wx0 + im[y0][x1][c] * wy0 * wx1 + im[y1][x0][c] * wy1 * wx0 +
                     im[y1][x1][c] * wy1 * wx1)
                out[oy][ox][c] = min(max(f32(v), lo), hi)
    return normalize_chw(out, out_h, out_w)


# ---- OwlViTImageProcessor (Pillow fixed point, then HF center_crop) -------------

def bicubic(x):
    a = -0.5
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def pil_coefficients(n_in, n_out):
    scale = n_in / n_out
    fs = max(scale, 1.0)
    support = 2.0 * fs
    out = []
    for xx in range(n_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in) - xmin
        w = [bicubic((x + xmin - center + 0.5) / fs) for x in range(xmax)]
        s = sum(w)
        w = [v / s for v in w] if s != 0 else w
        out.append((xmin, [int(-0.5 + v * (1 << 22)) if v < 0 else int(0.5 + v * (1 << 22)) for v in w]))
    return out


def clip8(v):
    v >>= 22
    return 0 if v < 0 else 255 if v > 255 else v


def pil_resize(img, h0, w0, out_h, out_w):
    vertical = pil_coefficients(h0, out_h)
    first, last = vertical[0][0], vertical[-1][0] + len(vertical[-1][1])
    tmp = {}
    horizontal = pil_coefficients(w0, out_w)
    for y in range(first, last):
        for xx, (xmin, k) in enumerate(horizontal):
            for c in range(3):
                tmp[(y, xx, c)] = clip8((1 << 21) + sum(img[y][xmin + i][c] * k[i] for i in range(len(k))))
    return [[[clip8((1 << 21) + sum(tmp[(ymin + i, x, c)] * k[i] for i in range(len(k)))) for c in range(3)]
             for x in range(out_w)] for (ymin, k) in vertical]


def owlvit_preprocess(img, h0, w0, size, crop):
    resized = pil_resize(img, h0, w0, size[0], size[1])
    top, left = (size[0] - crop[0]) // 2, (size[1] - crop[1]) // 2
    out = [[[0] * 3 for _ in range(crop[1])] for _ in range(crop[0])]
    for y in range(crop[0]):
        for x in range(crop[1]):
            sy, sx = y + top, x + left
            if 0 <= sy < size[0] and 0 <= sx < size[1]:
                out[y][x] = resized[sy][sx]
    rescaled = [[[f32(v * (1 / 255)) for v in px] for px in row] for row in out]
    return normalize_chw(rescaled, crop[0], crop[1])


# ---- the OWL forward (text tower and class head) ---------------------------------

class Model:
    def __init__(self, kind):
        folder = os.path.join(HERE, kind)
        self.prefix = kind
        self.config = json.load(open(os.path.join(folder, 'config.json')))
        self.weights = load(os.path.join(folder, 'model.safetensors'))
        self.inputs = load(os.path.join(folder, 'inputs.safetensors'))

    def t(self, name):
        shape, a = self.weights[name]
        if len(shape) == 2:
            return [a[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
        return a

    def linear(self, xs, w, b=None):
        wt = self.t(w)
        bias = self.t(b) if b else None
        return [[sum(x[k] * row[k] for k in range(len(x))) + (bias[o] if bias else 0) for o, row in enumerate(wt)]
                for x in xs]

    def ln(self, xs, w, b, eps):
        g, bb = self.t(w), self.t(b)
        out = []
        for x in xs:
            m = sum(x) / len(x)
            v = sum((t - m) ** 2 for t in x) / len(x)
            out.append([(t - m) / math.sqrt(v + eps) * g[i] + bb[i] for i, t in enumerate(x)])
        return out

    def attention(self, xs, p, heads, mask):
        n, d = len(xs), len(xs[0])
        hd = d // heads
        q = [[v * hd ** -0.5 for v in r] for r in self.linear(xs, p + 'q_proj.weight', p + 'q_proj.bias')]
        k = self.linear(xs, p + 'k_proj.weight', p + 'k_proj.bias')
        v = self.linear(xs, p + 'v_proj.weight', p + 'v_proj.bias')
        out = [[0.0] * d for _ in range(n)]
        for h in range(heads):
            s = slice(h * hd, (h + 1) * hd)
            for i in range(n):
                # float32 additions of the masks, as HF: a key hidden twice is -inf
                lg = [f32(f32(sum(a * b for a, b in zip(q[i][s], k[j][s])) + mask[0](i, j)) + mask[1](i, j))
                      for j in range(n)]
                top = max(lg)
                e = [math.exp(l - top) if l != -math.inf else 0.0 for l in lg]
                z = sum(e)
                for j in range(n):
                    for t in range(hd):
                        out[i][h * hd + t] += e[j] / z * v[j][h * hd + t]
        return self.linear(out, p + 'out_proj.weight', p + 'out_proj.bias')

    def encoder(self, xs, pre, c, mask):
        for layer in range(c['num_hidden_layers']):
            p = '%s.encoder.layers.%d.' % (pre, layer)
            h = self.ln(xs, p + 'layer_norm1.weight', p + 'layer_norm1.bias', c['layer_norm_eps'])
            a = self.attention(h, p + 'self_attn.', c['num_attention_heads'], mask)
            xs = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(xs, a)]
            h = self.ln(xs, p + 'layer_norm2.weight', p + 'layer_norm2.bias', c['layer_norm_eps'])
            h = [[v / (1 + math.exp(-1.702 * v)) for v in r] for r in self.linear(h, p + 'mlp.fc1.weight', p + 'mlp.fc1.bias')]
            h = self.linear(h, p + 'mlp.fc2.weight', p + 'mlp.fc2.bias')
            xs = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(xs, h)]
        return xs

    def image_features(self):
        vc, pref = self.config['vision_config'], self.prefix
        (_, channels, height, width), pv = self.inputs['pixel_values']
        p = vc['patch_size']
        gh, gw, d = height // p, width // p, vc['hidden_size']
        pw = self.t(pref + '.vision_model.embeddings.patch_embedding.weight')
        pw = [pw[o * channels * p * p:(o + 1) * channels * p * p] for o in range(d)]
        tokens = [self.t(pref + '.vision_model.embeddings.class_embedding')]
        for i in range(gh):
            for j in range(gw):
                patch = [pv[c * height * width + (i * p + y) * width + (j * p + x)] for c in range(channels)
                         for y in range(p) for x in range(p)]
                tokens.append([sum(a * b for a, b in zip(w, patch)) for w in pw])
        pos = self.t(pref + '.vision_model.embeddings.position_embedding.weight')
        xs = [[a + b for a, b in zip(t, q)] for t, q in zip(tokens, pos)]
        xs = self.ln(xs, pref + '.vision_model.pre_layernorm.weight', pref + '.vision_model.pre_layernorm.bias',
                     vc['layer_norm_eps'])
        xs = self.encoder(xs, pref + '.vision_model', vc, (lambda i, j: 0.0, lambda i, j: 0.0))
        xs = self.ln(xs, pref + '.vision_model.post_layernorm.weight', pref + '.vision_model.post_layernorm.bias',
                     vc['layer_norm_eps'])
        feats = [[a * b for a, b in zip(r, xs[0])] for r in xs[1:]]
        return self.ln(feats, 'layer_norm.weight', 'layer_norm.bias', vc['layer_norm_eps'])

    def text_embeds(self, rows, masks):
        tc, pref = self.config['text_config'], self.prefix
        pos = self.t(pref + '.text_model.embeddings.position_embedding.weight')
        emb = self.t(pref + '.text_model.embeddings.token_embedding.weight')
        out = []
        for ids, keep in zip(rows, masks):
            length = len(ids)
            xs = [[a + b for a, b in zip(emb[ids[s]], pos[s])] for s in range(length)]
            causal = lambda i, j: LOWEST if j > i else 0.0
            padding = lambda i, j, keep=keep: 0.0 if keep[j] else LOWEST
            xs = self.encoder(xs, pref + '.text_model', tc, (causal, padding))
            xs = self.ln(xs, pref + '.text_model.final_layer_norm.weight', pref + '.text_model.final_layer_norm.bias',
                         tc['layer_norm_eps'])
            eos = max(range(length), key=lambda s: (ids[s], -s))  # the first largest id
            out.append(xs[eos])
        out = self.linear(out, pref + '.text_projection.weight')
        return [[v / math.sqrt(sum(t * t for t in r)) for v in r] for r in out]

    def logits(self, feats, queries, query_mask):
        ce = self.linear(feats, 'class_head.dense0.weight', 'class_head.dense0.bias')
        ce = [[v / (math.sqrt(sum(t * t for t in r)) + 1e-6) for v in r] for r in ce]
        qn = [[v / (math.sqrt(sum(t * t for t in r)) + 1e-6) for v in r] for r in queries]
        shift = self.linear(feats, 'class_head.logit_shift.weight', 'class_head.logit_shift.bias')
        scale = self.linear(feats, 'class_head.logit_scale.weight', 'class_head.logit_scale.bias')
        elu = lambda x: x if x > 0 else math.exp(x) - 1
        return [[(sum(a * b for a, b in zip(ce[p], qn[q])) + shift[p][0]) * (elu(scale[p][0]) + 1)
                 if query_mask[q] else LOWEST for q in range(len(queries))] for p in range(len(ce))]


def main():
    goldens = {}
    goldens['owlv2_downscale_pixels'] = ([3, 48, 48], owlv2_preprocess(pattern(200, 300), 200, 300, 48, 48))
    goldens['owlv2_upscale_pixels'] = ([3, 32, 32], owlv2_preprocess(pattern(20, 30), 20, 30, 32, 32))
    goldens['owlvit_crop_pixels'] = ([3, 32, 48], owlvit_preprocess(pattern(37, 61), 37, 61, (40, 44), (32, 48)))

    rows = [[998, 999, 0, 0, 0, 0, 0, 0], [0] * 8, [998, 661, 246, 422, 999, 0, 0, 0]]
    masks = [[1, 1, 0, 0, 0, 0, 0, 0], [0] * 8, [1, 1, 1, 1, 1, 0, 0, 0]]
    for kind in ('owlv2', 'owlvit'):
        model = Model(kind)
        queries = model.text_embeds(rows, masks)
        logits = model.logits(model.image_features(), queries, [r[0] > 0 for r in rows])
        goldens[kind + '_masked_text_embeds'] = ([3, 24], [v for r in queries for v in r])
        goldens[kind + '_masked_logits'] = ([36, 3], [v for r in logits for v in r])
        # post_process_object_detection corners for a 100 x 40 (height x width) image
        _, boxes = load(os.path.join(HERE, kind, 'outputs.safetensors'))['pred_boxes']
        scale = [100] * 4 if kind == 'owlv2' else [40, 100, 40, 100]
        corners = []
        for p in range(36):
            cx, cy, w, h = boxes[4 * p:4 * p + 4]
            corners += [v * s for v, s in zip([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], scale)]
        goldens[kind + '_boxes_100x40'] = ([36, 4], corners)
    save(os.path.join(HERE, 'owl_goldens.safetensors'), goldens)


if __name__ == '__main__':
    main()
