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
    # Time-major before the input projection: the (small) inputs are
    # transposed, and each step's slice of the projection is contiguous.
    x = sequences.transpose(0, 1)
    input_mask = masks.input
    if input_mask is not None and not cell.share_input_mask:
        # (steps, gates, batch, features) -> (gates, steps, batch, features)
        input_mask = input_mask.permute(1, 0, 2, 3)
    elif input_mask is not None:
        input_mask = input_mask[:, None]
    step_mask = None
    if mask is not None:
        step_mask = mask.to(torch.bool).T[:, :, None]  # (steps, batch, 1)
    if layer.go_backwards:
        x = torch.flip(x, dims=[0])
        if input_mask is not None and not cell.share_input_mask:
            input_mask = torch.flip(input_mask, dims=[1])
        if step_mask is not None:
            step_mask = torch.flip(step_mask, dims=[0])
    xw = cell._project(x.contiguous(), input_mask)  # (steps, batch, gates * units)
    dtype = xw.dtype
    recurrent_kernel = masks.recurrent_kernel
    if recurrent_kernel is None:
        recurrent_kernel = keras.ops.cast(cell.recurrent_kernel, dtype)
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

    Eager torch pays per op, so each step runs as few ops as it can, each
    writing into a buffer preallocated for all steps (`out=`, in place):
    the forward's matmul adds the input side (`addmm`), one sigmoid over
    the four gates and a tanh over the candidate's block; the backward's
    activation derivatives are computed for all steps at once before its
    loop, and the recurrent kernel's gradient is one matmul over all steps
    after it.
    """

    @staticmethod
    def forward(ctx, xw, h0, c0, kernel, mask, step_mask, zero_output):
        steps, batch, width = xw.shape
        units = width // 4
        shared = mask.shape[0] == 1
        new = xw.new_empty
        outputs = new((steps, batch, units))
        acts = torch.empty_like(xw)  # i, f, g, o after their activations
        cs = new((steps + 1, batch, units))  # the c entering step t, and the last
        tanh_cs = new((steps, batch, units))  # tanh(c_t), before any step mask
        hms = new((steps, *mask.shape))
        cs[0] = c0
        z = new((batch, width))
        h = h0
        previous = torch.zeros_like(h0)
        # Each buffer's per-step views, made once (indexing is an op too).
        xw_, acts_, cs_, tanh_cs_, outputs_ = (
            v.unbind(0) for v in (xw, acts, cs, tanh_cs, outputs)
        )
        hm_ = hms[:, 0].unbind(0)
        m = mask[0]
        candidate = slice(2 * units, 3 * units)
        z_candidate = z[:, candidate]
        for t in range(steps):
            if shared:
                torch.mul(h, m, out=hm_[t])
                torch.addmm(xw_[t], hm_[t], kernel, out=z)
                z_g = z_candidate
            else:
                z, hms[t] = _recurrent_matmul(h, mask, kernel)
                z += xw_[t]
                z_g = z[:, candidate]
            a = acts_[t]
            torch.sigmoid(z, out=a)
            i, f, g, o = a.split(units, dim=-1)
            torch.tanh(z_g, out=g)
            c_prev, c_new, tanh_c = cs_[t], cs_[t + 1], tanh_cs_[t]
            torch.mul(f, c_prev, out=c_new)
            c_new.addcmul_(i, g)
            torch.tanh(c_new, out=tanh_c)
            if step_mask is None:
                h = torch.mul(o, tanh_c, out=outputs_[t])
                continue
            keep = step_mask[t]
            h_new = o * tanh_c
            previous = _masked_outputs(step_mask, t, h_new, previous, zero_output)
            outputs[t] = previous
            h = torch.where(keep, h_new, h)
            c_new.copy_(torch.where(keep, c_new, c_prev))
        ctx.save_for_backward(kernel, mask, acts, cs, tanh_cs, hms, step_mask)
        ctx.zero_output = zero_output
        return outputs, h.clone(), cs[steps].clone()

    @staticmethod
    def backward(ctx, d_outputs, d_h, d_c):
        kernel, mask, acts, cs, tanh_cs, hms, step_mask = ctx.saved_tensors
        steps, _, width = acts.shape
        units = width // 4
        shared = mask.shape[0] == 1
        # The activations' derivatives, all steps at once: s (1 - s) for the
        # sigmoid gates, 1 - g^2 for the candidate; and d c_t / d h_t = o (1
        # - tanh(c_t)^2).
        slopes = acts * acts
        torch.sub(acts, slopes, out=slopes)
        g, slope_g = (
            acts[..., 2 * units : 3 * units],
            slopes[..., 2 * units : 3 * units],
        )
        torch.mul(g, g, out=slope_g)
        slope_g.neg_().add_(1)
        dc_dh = tanh_cs * tanh_cs
        dc_dh.neg_().add_(1).mul_(acts[..., 3 * units :])
        dz = torch.empty_like(acts)
        dh = d_h.clone()
        dc = d_c.clone()
        d_out = d_outputs.clone() if step_mask is not None else d_outputs
        kernel_t = kernel.T
        m = mask[0]
        acts_, dz_, slopes_, dc_dh_, cs_, tanh_cs_ = (
            v.unbind(0) for v in (acts, dz, slopes, dc_dh, cs, tanh_cs)
        )
        d_out_ = d_out.unbind(0)
        for t in range(steps - 1, -1, -1):
            if step_mask is None:
                dh_new = dh.add_(d_out_[t])
                dc_new = dc
            else:
                keep = step_mask[t]
                # A masked step passes its state (and, unless it outputs
                # zeros, its output) through unchanged.
                dh_new = torch.where(keep, dh + d_out_[t], 0)
                dc_new = torch.where(keep, dc, 0)
                dh_carried = torch.where(keep, 0, dh)
                dc_carried = torch.where(keep, 0, dc)
                if t > 0 and not ctx.zero_output:
                    d_out_[t - 1].add_(torch.where(keep, 0, d_out_[t]))
            i, f, g, o = acts_[t].split(units, dim=-1)
            d = dz_[t]
            di, df, dg, do = d.split(units, dim=-1)
            torch.mul(dh_new, tanh_cs_[t], out=do)
            dc_new.addcmul_(dh_new, dc_dh_[t])
            torch.mul(dc_new, g, out=di)
            torch.mul(dc_new, i, out=dg)
            torch.mul(dc_new, cs_[t], out=df)
            dc_new.mul_(f)
            d.mul_(slopes_[t])
            if shared:
                dh = torch.mm(d, kernel_t).mul_(m)
            else:
                dh = _dh_from_dz(d, mask, kernel)
            dc = dc_new
            if step_mask is not None:
                dh += dh_carried
                dc += dc_carried
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
        units = h0.shape[1]
        shared = mask.shape[0] == 1
        rec = xw.new_empty((h0.shape[0], 3 * units))
        xw_, saved_, states_, outputs_ = (
            v.unbind(0) for v in (xw, saved, states, outputs)
        )
        for t in range(steps):
            states_[t].copy_(h)
            if shared:
                hm = hms[t, 0]
                torch.mul(h, mask[0], out=hm)
                if recurrent_bias is None:
                    torch.mm(hm, kernel, out=rec)
                else:
                    torch.addmm(recurrent_bias, hm, kernel, out=rec)
            else:
                rec, hms[t] = _recurrent_matmul(h, mask, kernel)
                if recurrent_bias is not None:
                    rec = rec + recurrent_bias
            x_t, saved_t = xw_[t], saved_[t]  # saved: z, r, n, r_h
            z, r, n, r_h = saved_t.split(units, dim=-1)
            gates = saved_t[:, : 2 * units]
            torch.add(x_t[:, : 2 * units], rec[:, : 2 * units], out=gates)
            gates.sigmoid_()
            r_h.copy_(rec[:, 2 * units :])
            torch.mul(r, r_h, out=n)
            n.add_(x_t[:, 2 * units :]).tanh_()
            # h_new = z * h + (1 - z) * n = n + z * (h - n)
            h_new = outputs_[t] if step_mask is None else torch.empty_like(h)
            torch.sub(h, n, out=h_new)
            h_new.mul_(z).add_(n)
            if step_mask is None:
                h = h_new
                continue
            previous = _masked_outputs(step_mask, t, h_new, previous, zero_output)
            outputs[t] = previous
            h = torch.where(step_mask[t], h_new, h)
        ctx.save_for_backward(kernel, mask, saved, states, hms, step_mask)
        ctx.zero_output = zero_output
        ctx.has_bias = recurrent_bias is not None
        return outputs, h.clone()

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
