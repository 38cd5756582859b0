import Foundation

/// Where a tool writes while it runs. The tools print nothing themselves: `prov` hands them its standard output and,
/// on a terminal, its standard error; a test hands them `silent`.
package struct Console: Sendable {
    /// One line of what the tool reports (standard output in `prov`).
    package var line: @Sendable (String) -> Void
    /// Text for a terminal line redrawn in place (a terminal's standard error in `prov`); nil where there is none.
    package var status: (@Sendable (String) -> Void)?

    package init(line: @escaping @Sendable (String) -> Void, status: (@Sendable (String) -> Void)?) {
        self.line = line
        self.status = status
    }

    /// Writes nothing.
    package static let silent = Console(line: { _ in }, status: nil)
}

/// A one-line progress display, redrawn at most five times a second; silent without a status line to draw on.
package final class ProgressLine: @unchecked Sendable {
    // Only touched from the thread running the command.
    let status: (@Sendable (String) -> Void)?
    var last = Date.distantPast

    package init(_ status: (@Sendable (String) -> Void)?) { self.status = status }

    package func update(_ text: String) {
        guard let status, Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        status("\r\u{1B}[K\(text)")
    }

    package func clear() { status?("\r\u{1B}[K") }
}
