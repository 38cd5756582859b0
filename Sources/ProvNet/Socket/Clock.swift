import CShims

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC): deadlines that a wall-clock step cannot move.
struct Instant: Comparable, Sendable {
    var nanoseconds: UInt64

    static var now: Instant { Instant(nanoseconds: prov_monotonic_ns()) }

    static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    static func + (a: Instant, d: Duration) -> Instant {
        let (sum, overflow) = a.nanoseconds.addingReportingOverflow(d.wholeNanoseconds)
        return Instant(nanoseconds: overflow ? .max : sum)
    }

    /// Milliseconds from `self` until `later`, rounded up, 0 if `later` has passed, capped at `cap`.
    func milliseconds(until later: Instant, cap: Int32) -> Int32 {
        guard later.nanoseconds > nanoseconds else { return 0 }
        let ms = (later.nanoseconds - nanoseconds + 999_999) / 1_000_000
        return ms > UInt64(cap) ? cap : Int32(ms)
    }
}

extension Duration {
    /// Whole nanoseconds, negative durations as 0, saturating.
    var wholeNanoseconds: UInt64 {
        let (s, atto) = components
        guard s >= 0 else { return 0 }
        let (ns, overflow) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, o2) = ns.addingReportingOverflow(UInt64(atto / 1_000_000_000))
        return o2 ? .max : sum
    }
}
