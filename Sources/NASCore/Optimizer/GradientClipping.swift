/// Gradient clipping by value, `torch.nn.utils.clip_grad_value_(params, clip)`:
/// every gradient element is clamped to `[-clip, clip]` (AlphaNet:
/// `grad_clip_value: 1.0`, applied after all sandwich backward passes and
/// before the optimizer step). NaN stays NaN, as with `torch.clamp`.
public enum GradientClipping {
    /// Clamps `gradients` in place; returns how many elements were changed.
    @discardableResult
    public static func clipByValue(_ gradients: UnsafeMutableBufferPointer<Float>, limit: Float) -> Int {
        precondition(limit >= 0, "the clip value must be non-negative")
        var changed = 0
        for i in gradients.indices {
            let g = gradients[i]
            // Written out so that a NaN fails both tests and stays NaN.
            if g > limit {
                gradients[i] = limit
                changed += 1
            } else if g < -limit {
                gradients[i] = -limit
                changed += 1
            }
        }
        return changed
    }

    /// Array convenience.
    @discardableResult
    public static func clipByValue(_ gradients: inout [Float], limit: Float) -> Int {
        gradients.withUnsafeMutableBufferPointer { clipByValue($0, limit: limit) }
    }
}
