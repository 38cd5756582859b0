import Foundation

/// Where a checkout of the project keeps what `prov demo` (and the demos after it) run on.
enum Checkout {
    /// The `Nodes` folder of the checkout `folder` is in: the nearest folder at or above it that holds both
    /// `Package.swift` and a `Nodes` folder; nil outside any checkout.
    static func nodesFolder(from folder: String) -> String? {
        var dir = URL(fileURLWithPath: folder).standardizedFileURL
        let fm = FileManager.default
        while true {
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path),
                fm.fileExists(atPath: dir.appendingPathComponent("Nodes").path, isDirectory: &isDirectory),
                isDirectory.boolValue
            {
                return dir.appendingPathComponent("Nodes").path
            }
            let up = dir.deletingLastPathComponent()
            if up.path == dir.path { return nil }
            dir = up
        }
    }

    /// The Nodes folder to use: `given` (`--nodes`), else the checkout's, found from the current folder.
    static func nodes(_ given: String?) throws(UsageError) -> String {
        if let given { return given }
        let here = FileManager.default.currentDirectoryPath
        guard let found = nodesFolder(from: here) else {
            throw UsageError(
                "no Nodes folder in \(here) or a folder above it (a checkout keeps one beside Package.swift): run "
                    + "this inside a checkout, or pass --nodes DIR")
        }
        return found
    }
}
