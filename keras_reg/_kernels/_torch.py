"""PyTorch fast paths: mask bits in place, fused recurrences, hand-written BPTT.

- `position_bits`: the portable hash with in-place integer ops. Eager torch
  runs one kernel per op and allocates a tensor for each result; the same
  arithmetic in place on one buffer roughly halves a mask draw. The bits
  are identical to `keras_reg._random.position_bits`.
- `fused_recurrence`: a sequence layer's call in torch's own LSTM, GRU or
  RNN kernel (`torch._VF.lstm` / `gru` / `rnn_tanh` / `rnn_relu`: cuDNN on
  a CUDA device, ATen's loop on the CPU), where every active mask is shared
  by the whole sequence and applied outside the recurrence: inference,
  input dropout (the inputs are masked first), weight drop (the kernel is
  masked first) and output dropout (applied by the layer after).
- `fast_recurrence`: a training call with recurrent dropout, which no fused
  kernel can run (one mask per sample on `h`), as one
  `torch.autograd.Function` over the whole sequence: a forward loop that
  records no graph, and a backward written by hand in which the recurrent
  kernel's gradient is one matmul over all steps and only `dh` (and `dc`)
  travel backwards step by step. LSTM and GRU (`reset_after=True`), shared
  or per-gate masks, weight drop, input masks (`mask_zero`), `go_backwards`.

Each is tested to give what the portable `keras.ops` loop gives.
"""

import math

import keras
import torch

from keras_reg import _random
from keras_reg._kernels import _eligible

# --- mask bits -----------------------------------------------------------------


def _mix_(x, tmp):
    torch.bitwise_right_shift(x, 16, out=tmp)
    x.bitwise_xor_(tmp.bitwise_and_(0xFFFF))
    x.mul_(_random._M1)
    torch.bitwise_right_shift(x, 15, out=tmp)
    x.bitwise_xor_(tmp.bitwise_and_(0x1FFFF))
    x.mul_(_random._M2)
    torch.bitwise_right_shift(x, 16, out=tmp)
    x.bitwise_xor_(tmp.bitwise_and_(0xFFFF))


def position_bits(shape, position):
    shape = tuple(int(d) for d in shape)
    with torch.no_grad():
        k1, k2 = _random.keys(position)
        x = torch.arange(math.prod(shape), dtype=torch.int32, device=k1.device)
        tmp = torch.empty_like(x)
        x.bitwise_xor_(k1)
        _mix_(x, tmp)
        x.add_(k2)
        _mix_(x, tmp)
        x.bitwise_right_shift_(32 - _random.BITS)
        x.bitwise_and_(_random.ONE - 1)
    return x.view(shape)


# --- which calls a fast path can take -------------------------------------------

# torch runs loops eagerly: `keras_reg._kernels.unrolls_loops` and
# `hoists_projection` read these.
UNROLLS_LOOPS = True
HOISTS_PROJECTION = True

_TANH = (*_eligible.TANH, torch.tanh)
_SIGMOID = (*_eligible.SIGMOID, torch.sigmoid)
_RELU = (*_eligible.RELU, torch.relu)


def _vf_mode(cell):
    """The `torch._VF` kernel that computes this cell (its refusals None)."""
    kind = cell._fused_kind
    if kind in ("lstm", "gru"):
        return kind
    return "rnn_tanh" if cell.activation in _TANH else "rnn_relu"


def _gates(cell):
    """None if torch's kernels compute this cell's gates, else why not."""
    if cell._fused_kind == "rnn":
        if cell.activation in _TANH or cell.activation in _RELU:
            return None
        return "the kernels compute a SimpleRNN with tanh or relu only."
    return _eligible.first(
        lambda: _eligible.standard_gates(cell, _TANH, _SIGMOID),
        lambda: _eligible.gru_reset_after(cell),
    )


def _supported(x):
    """None if torch's fused kernels take `x`'s dtype on its device."""
    if x.device.type == "cuda":
        dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    else:
        dtypes = (torch.float32, torch.float64)
    if x.dtype in dtypes:
        return None
    return f"torch's fused kernels do not take {x.dtype} on {x.device.type}."


def fused_refusal(layer, sequences, initial_state, mask, masks):
    cell = layer.cell
    return _eligible.first(
        lambda: _eligible.fused_kind(cell),
        lambda: _gates(cell),
        lambda: _eligible.masks_outside(cell, mask, masks),
        lambda: _supported(sequences),
    )


def fast_refusal(layer, sequences, initial_state, mask, masks):
    cell = layer.cell

    def recurrence():
        if masks.recurrent is None:
            return "the call has no per-sample recurrent mask."
        if getattr(cell, "_fused_kind", None) not in ("lstm", "gru"):
            return "the hand-written BPTT computes LSTM and GRU cells only."
        return None

    def loop():
        if layer.unroll:
            return "unroll=True runs the portable loop."
        if cell._active["zoneout"]:
            return "zoneout mixes the old and new state at every step."
        if not torch.is_grad_enabled():
            return "no gradient is recorded: the portable loop is as fast."
        return None

    return _eligible.first(recurrence, lambda: _gates(cell), loop)


def vf(mode):
    """torch's fused recurrent kernel `mode` (`"lstm"`, `"gru"`,
    `"rnn_tanh"`, `"rnn_relu"`): `torch._VF`, a private namespace, read
    here only (canary: tests/test_fast_paths.py, checked with torch
    2.13.0)."""
    return getattr(torch._VF, mode)


# --- the fused kernels -----------------------------------------------------------


def _vf_params(mode, cell, kernel, recurrent_kernel, dtype):
    """`[w_ih, w_hh, b_ih, b_hh]` in torch's layout and gate order."""
    units = cell.units
    bias = None
    if cell.use_bias:
        bias = keras.ops.cast(cell.bias, dtype)
    if mode == "gru":
        # Keras orders the gates z, r, h; torch r, z, n.
        def reorder(w):
            z, r, h = torch.split(w, units, dim=-1)
            return torch.cat([r, z, h], dim=-1)

        kernel, recurrent_kernel = reorder(kernel), reorder(recurrent_kernel)
        params = [kernel.T, recurrent_kernel.T]
        if bias is not None:
            params += [reorder(bias[0]), reorder(bias[1])]
    else:
        params = [kernel.T, recurrent_kernel.T]
        if bias is not None:
            params += [bias, torch.zeros_like(bias)]
    # cuDNN views the weights as one flat buffer: each must be contiguous.
    return [p.contiguous() for p in params]


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    cell = layer.cell
    mode = _vf_mode(cell)
    x = sequences
    if masks.input is not None:
        x = x * masks.input[0][:, None, :]
    dtype = sequences.dtype
    kernel = keras.ops.cast(cell.kernel, dtype)
    recurrent_kernel = masks.recurrent_kernel
    if recurrent_kernel is None:
        recurrent_kernel = keras.ops.cast(cell.recurrent_kernel, dtype)
    params = _vf_params(mode, cell, kernel, recurrent_kernel, dtype)
    if layer.go_backwards:
        x = torch.flip(x, dims=[1])
    states = [s[None].contiguous() for s in initial_state]
    hx = tuple(states) if mode == "lstm" else states[0]
    run = vf(mode)
    result = run(
        x.contiguous(),
        hx,
        params,
        cell.use_bias,
        1,  # layers
        0.0,  # dropout
        torch.is_grad_enabled(),
        False,  # bidirectional
        True,  # batch_first
    )
    outputs, *final = result
    final = [s[0] for s in final]
    last_output = outputs[:, -1]
    return last_output, (outputs if layer.return_sequences else None), final


def gpu_available():
    return torch.cuda.is_available()


def layer_norm(v, gamma, beta, epsilon):
    """torch's fused `layer_norm` (one kernel forward, one backward)."""
    return torch.nn.functional.layer_norm(v, v.shape[-1:], gamma, beta, epsilon)


# --- hand-written backpropagation through time ------------------------------------


def fast_recurrence(layer, sequences, initial_state, mask, masks):
    """A training call with recurrent dropout, as one autograd Function."""
    cell = layer.cell
    kind = cell._fused_kind
    x = sequences
    input_mask = masks.input
    if input_mask is not None and not cell.share_input_mask:
        # (steps, gates, batch, features) -> (gates, batch, steps, features)
        input_mask = input_mask.permute(1, 2, 0, 3)
    elif input_mask is not None:
        input_mask = input_mask[:, :, None, :]
    xw = cell._project(x, input_mask)  # (batch, steps, gates * units)
    dtype = xw.dtype
    recurrent_kernel = masks.recurrent_kernel
    if recurrent_kernel is None:
        recurrent_kernel = keras.ops.cast(cell.recurrent_kernel, dtype)
    xw = xw.transpose(0, 1)  # time-major
    step_mask = None
    if mask is not None:
        step_mask = mask.to(torch.bool).T[:, :, None]  # (steps, batch, 1)
    if layer.go_backwards:
        xw = torch.flip(xw, dims=[0])
        if step_mask is not None:
            step_mask = torch.flip(step_mask, dims=[0])
    zero_output = bool(layer.zero_output_for_mask)
    if kind == "lstm":
        outputs, h, c = _LSTMThroughTime.apply(
            xw,
            initial_state[0],
            initial_state[1],
            recurrent_kernel,
            masks.recurrent,
            step_mask,
            zero_output,
        )
        final = [h, c]
    else:
        recurrent_bias = None
        if cell.use_bias:
            recurrent_bias = keras.ops.cast(cell.bias[1], dtype)
        outputs, h = _GRUThroughTime.apply(
            xw,
            initial_state[0],
            recurrent_kernel,
            recurrent_bias,
            masks.recurrent,
            step_mask,
            zero_output,
        )
        final = [h]
    last_output = outputs[-1]
    sequence = outputs.transpose(0, 1) if layer.return_sequences else None
    return last_output, sequence, final


def _recurrent_matmul(h, mask, kernel):
    """`(h * mask) @ kernel`, one mask per gate block when `mask` holds
    several. Returns the product and the masked `h` (`(gates, batch,
    units)`)."""
    hm = h[None] * mask  # (gates, batch, units)
    gates = mask.shape[0]
    if gates == 1:
        return hm[0] @ kernel, hm
    units = kernel.shape[0]
    blocks = kernel.reshape(units, gates, -1).permute(1, 0, 2)  # (g, units, n)
    return torch.bmm(hm, blocks).permute(1, 0, 2).reshape(h.shape[0], -1), hm


def _recurrent_grads(dz, hm, mask, kernel):
    """The gradients of `(h * mask) @ kernel` for all steps at once.

    `dz` is `(steps, batch, gates * n)`, `hm` `(steps, gates, batch,
    units)`. Returns `d kernel`.
    """
    gates = mask.shape[0]
    units = kernel.shape[0]
    if gates == 1:
        return hm[:, 0].reshape(-1, units).T @ dz.reshape(-1, dz.shape[-1])
    width = dz.shape[-1] // gates
    dz = dz.reshape(-1, gates, width).permute(1, 0, 2)  # (gates, steps * batch, n)
    hm = hm.permute(1, 0, 2, 3).reshape(gates, -1, units)
    grads = torch.bmm(hm.transpose(1, 2), dz)  # (gates, units, n)
    return grads.permute(1, 0, 2).reshape(units, -1)


def _dh_from_dz(dz_t, mask, kernel):
    """`d h` from `d z` through `(h * mask) @ kernel`."""
    gates = mask.shape[0]
    if gates == 1:
        return (dz_t @ kernel.T) * mask[0]
    units = kernel.shape[0]
    blocks = kernel.reshape(units, gates, -1).permute(1, 2, 0)  # (g, n, units)
    dz_g = dz_t.reshape(dz_t.shape[0], gates, -1).permute(1, 0, 2)  # (g, b, n)
    return (torch.bmm(dz_g, blocks) * mask).sum(0)


def _masked_outputs(step_mask, t, h_new, previous, zero_output):
    if step_mask is None:
        return h_new
    fill = torch.zeros_like(h_new) if zero_output else previous
    return torch.where(step_mask[t], h_new, fill)


class _LSTMThroughTime(torch.autograd.Function):
    """An LSTM over all steps with a recurrent mask, backward by hand.

    Inputs: `xw` `(steps, batch, 4 * units)` (the input side, bias
    included), `h0`, `c0`, the recurrent kernel, the recurrent mask
    `(gates, batch, units)`, the step mask `(steps, batch, 1)` or None, and
    whether masked steps output zeros. Outputs: every step's output, and
    the last `h` and `c`.
    """

    @staticmethod
    def forward(ctx, xw, h0, c0, kernel, mask, step_mask, zero_output):
        steps = xw.shape[0]
        h, c = h0, c0
        outputs = torch.empty((steps, *h0.shape), dtype=xw.dtype, device=xw.device)
        gates = torch.empty_like(xw)  # i, f, g, o after their activations
        cells = torch.empty_like(outputs)  # c_t, before any step mask
        carried = torch.empty_like(outputs)  # the c entering step t
        hms = torch.empty((steps, *mask.shape), dtype=xw.dtype, device=xw.device)
        previous = torch.zeros_like(h0)
        for t in range(steps):
            z, hms[t] = _recurrent_matmul(h, mask, kernel)
            z += xw[t]
            i, f, g, o = z.chunk(4, dim=-1)
            i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
            g = torch.tanh(g)
            c_new = f * c + i * g
            h_new = o * torch.tanh(c_new)
            gates[t] = torch.cat([i, f, g, o], dim=-1)
            cells[t] = c_new
            carried[t] = c
            previous = _masked_outputs(step_mask, t, h_new, previous, zero_output)
            outputs[t] = previous
            if step_mask is not None:
                h_new = torch.where(step_mask[t], h_new, h)
                c_new = torch.where(step_mask[t], c_new, c)
            h, c = h_new, c_new
        ctx.save_for_backward(kernel, mask, gates, cells, carried, hms, step_mask)
        ctx.zero_output = zero_output
        return outputs, h, c

    @staticmethod
    def backward(ctx, d_outputs, d_h, d_c):
        kernel, mask, gates, cells, carried, hms, step_mask = ctx.saved_tensors
        steps = gates.shape[0]
        dz = torch.empty_like(gates)
        dh = d_h.clone()
        dc = d_c.clone()
        d_out = d_outputs.clone()
        for t in range(steps - 1, -1, -1):
            i, f, g, o = gates[t].chunk(4, dim=-1)
            c_new, c_prev = cells[t], carried[t]
            if step_mask is not None:
                keep = step_mask[t]
                # A masked step passes its state (and, unless it outputs
                # zeros, its output) through unchanged.
                dh_new = torch.where(keep, dh + d_out[t], 0)
                dc_new = torch.where(keep, dc, 0)
                dh = torch.where(keep, 0, dh)
                dc = torch.where(keep, 0, dc)
                if t > 0 and not ctx.zero_output:
                    d_out[t - 1] += torch.where(keep, 0, d_out[t])
            else:
                dh_new = dh + d_out[t]
                dc_new = dc
                dh = torch.zeros_like(dh)
                dc = torch.zeros_like(dc)
            tanh_c = torch.tanh(c_new)
            do = dh_new * tanh_c
            dc_new = dc_new + dh_new * o * (1 - tanh_c * tanh_c)
            di = dc_new * g
            dg = dc_new * i
            df = dc_new * c_prev
            dc = dc + dc_new * f
            di, df = di * i * (1 - i), df * f * (1 - f)
            dg, do = dg * (1 - g * g), do * o * (1 - o)
            dz_t = torch.cat([di, df, dg, do], dim=-1)
            dz[t] = dz_t
            dh = dh + _dh_from_dz(dz_t, mask, kernel)
        d_kernel = _recurrent_grads(dz, hms, mask, kernel)
        return dz, dh, dc, d_kernel, None, None, None


class _GRUThroughTime(torch.autograd.Function):
    """A GRU (`reset_after=True`) over all steps with a recurrent mask,
    backward by hand. `xw` holds the input side with the input bias; the
    recurrent bias comes separately (None without a bias)."""

    @staticmethod
    def forward(ctx, xw, h0, kernel, recurrent_bias, mask, step_mask, zero_output):
        steps = xw.shape[0]
        h = h0
        outputs = torch.empty((steps, *h0.shape), dtype=xw.dtype, device=xw.device)
        saved = torch.empty(
            (steps, h0.shape[0], 4 * h0.shape[1]), dtype=xw.dtype, device=xw.device
        )  # z, r, n, recurrent candidate part
        states = torch.empty_like(outputs)  # h entering each step
        hms = torch.empty((steps, *mask.shape), dtype=xw.dtype, device=xw.device)
        previous = torch.zeros_like(h0)
        for t in range(steps):
            rec, hms[t] = _recurrent_matmul(h, mask, kernel)
            if recurrent_bias is not None:
                rec = rec + recurrent_bias
            x_z, x_r, x_h = xw[t].chunk(3, dim=-1)
            r_z, r_r, r_h = rec.chunk(3, dim=-1)
            z = torch.sigmoid(x_z + r_z)
            r = torch.sigmoid(x_r + r_r)
            n = torch.tanh(x_h + r * r_h)
            h_new = z * h + (1 - z) * n
            saved[t] = torch.cat([z, r, n, r_h], dim=-1)
            states[t] = h
            previous = _masked_outputs(step_mask, t, h_new, previous, zero_output)
            outputs[t] = previous
            if step_mask is not None:
                h_new = torch.where(step_mask[t], h_new, h)
            h = h_new
        ctx.save_for_backward(kernel, mask, saved, states, hms, step_mask)
        ctx.zero_output = zero_output
        ctx.has_bias = recurrent_bias is not None
        return outputs, h

    @staticmethod
    def backward(ctx, d_outputs, d_h):
        kernel, mask, saved, states, hms, step_mask = ctx.saved_tensors
        steps = saved.shape[0]
        dxw = torch.empty(
            (steps, saved.shape[1], kernel.shape[1]),
            dtype=saved.dtype,
            device=saved.device,
        )
        drec = torch.empty_like(dxw)
        dh = d_h.clone()
        d_out = d_outputs.clone()
        for t in range(steps - 1, -1, -1):
            z, r, n, r_h = saved[t].chunk(4, dim=-1)
            h_prev = states[t]
            if step_mask is not None:
                keep = step_mask[t]
                dh_new = torch.where(keep, dh + d_out[t], 0)
                dh = torch.where(keep, 0, dh)
                if t > 0 and not ctx.zero_output:
                    d_out[t - 1] += torch.where(keep, 0, d_out[t])
            else:
                dh_new = dh + d_out[t]
                dh = torch.zeros_like(dh)
            dn = dh_new * (1 - z)
            dpre_n = dn * (1 - n * n)
            dpre_z = dh_new * (h_prev - n) * z * (1 - z)
            dpre_r = dpre_n * r_h * r * (1 - r)
            dxw[t] = torch.cat([dpre_z, dpre_r, dpre_n], dim=-1)
            drec_t = torch.cat([dpre_z, dpre_r, dpre_n * r], dim=-1)
            drec[t] = drec_t
            dh = dh + dh_new * z + _dh_from_dz(drec_t, mask, kernel)
        d_kernel = _recurrent_grads(drec, hms, mask, kernel)
        d_bias = drec.sum(dim=(0, 1)) if ctx.has_bias else None
        return dxw, dh, d_kernel, d_bias, None, None, None
