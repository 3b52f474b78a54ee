import Dispatch

/// Monotonic time in nanoseconds.
@inline(__always)
package func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
