import Foundation
import ProvLedger
import ProvNode
import ProvTools
import ProvView

let fuzzConsortium = try! Vectors.consortium()
let fuzzContext = AuditContext(consortium: fuzzConsortium, org: "brand")

/// One fuzz input through every decoder that reads untrusted bytes, the HTTP parsers (FuzzHTTP.swift) and a node's
/// routes (FuzzNode.swift). Whatever a decoder accepts must re-encode to the same bytes (one byte form per value), and
/// nothing may crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let v = try? CBOR.decode(bytes), v.encoded != bytes {
        fatalError("CBOR accepted a non-canonical form")
    }
    let decoded = try? Entry.decode(bytes)
    if let e = decoded, e.encoded != bytes {
        fatalError("an entry decoded from bytes it does not re-encode to")
    }
    // The verifier's fast audit must accept exactly what the decoder (plus membership) accepts.
    let audited = bytes.withUnsafeBytes { try? Entry.audit($0, fuzzContext) }
    let acceptable =
        decoded.map { e in
            e.log == "vectors/brand" && e.consortiumFailure(fuzzConsortium) == nil
        } ?? false
    if (audited != nil) != acceptable { fatalError("Entry.audit and Entry.decode disagree") }
    // The view's decoder reads every entry the ledger's decoder accepts, and finds the same facts in it.
    let facts = try? EntryFacts(decoding: bytes, leaf: .zero)
    if let e = decoded {
        guard let f = facts, f.hlc == e.hlc, f.ref.seq == e.seq, f.subjects == e.body.subjects,
            f.occurredAt == e.body.occurredAt, f.kind == e.body.kind
        else { fatalError("the view's decoder disagrees with Entry.decode") }
    }
    // A subject access report is read from an untrusted file too.
    _ = try? SubjectReport.verify(json: bytes, consortium: fuzzConsortium)
    if let j = try? JSON.parse(bytes) {
        guard let again = try? JSON.parse(j.serialized), again == j else { fatalError("JSON round trip failed") }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? SignedCheckpoint(parsing: text)
    _ = try? Receipt(parsing: text)
    bytes.withUnsafeBytes { raw in
        var off = 0
        while case .record(_, _, let next) = SegmentFormat.record(in: raw, at: off) { off = next }
    }
    // What a peer sends a node: an add-checkpoint body, and tile paths; both have one accepted form.
    if let a = try? AddCheckpoint(parsing: bytes) {
        guard let again = try? AddCheckpoint(parsing: a.serialized), again == a else {
            fatalError("an add-checkpoint body does not read back the same")
        }
    }
    if let t = TileAddress(path: text), t.description != text { fatalError("a tile path has two forms") }
    // What a peer or an operator posts to a node's consortium route, and a proposal file a member is asked to sign:
    // every version of a chain is checked against the one before it, each approval's signature included.
    _ = try? ConsortiumChain.parse(bytes, source: "fuzz")
    _ = try? ConsortiumProposal(parsing: bytes, source: "fuzz")
    fuzzHTTP(bytes)
    // The same input as one request to a running node (FuzzNode.swift).
    fuzzNode(bytes)
    return 0
}

#if !FUZZING
    /// Without libFuzzer: replays the files named on the command line, and every file under the folders named (a
    /// corpus such as Tests/FuzzCorpus, or a crash reproducer), each once, in name order. Each input's path is
    /// printed on standard error before it runs, so the one a failure stops at is the last named. Exit 0 when every
    /// input ran; a path that cannot be read, or no input at all, exits 2.
    @main enum Replay {
        static func main() {
            var inputs: [String] = []
            for path in CommandLine.arguments.dropFirst() {
                guard let found = files(at: path) else { fail("\(path): no such file or folder") }
                inputs += found
            }
            guard !inputs.isEmpty else { fail("usage: Fuzz FILE|FOLDER...: no input to replay") }
            for path in inputs {
                guard let d = FileManager.default.contents(atPath: path) else { fail("\(path): cannot be read") }
                FileHandle.standardError.write(Data("replay: \(path)\n".utf8))
                let bytes = [UInt8](d)
                _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress, $0.count) }
            }
            print("replayed \(inputs.count) inputs without a failure")
        }

        /// `path` itself, or the files under it in name order; nil when there is nothing at `path`.
        static func files(at path: String) -> [String]? {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
            guard isDir.boolValue else { return [path] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return names.sorted().flatMap { files(at: path + "/" + $0) ?? [] }
        }

        static func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data("Fuzz: \(message)\n".utf8))
            exit(2)
        }
    }
#endif
