import CShims
import Foundation
import ProvLedger
import ProvNode

#if canImport(Glibc)
    import Glibc
#endif

// provd --config NODE.json [--log-format text|json]   (Specs/protocol.md §2.3)

let usage = "usage: provd --config NODE.json [--log-format text|json]"

func fail(_ log: NodeLog, _ message: String) -> Never {
    log.error(message)
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
var configPath: String?
var format: NodeLog.Format?
if let env = ProcessInfo.processInfo.environment["PROV_LOG_FORMAT"] {
    guard let f = NodeLog.Format(rawValue: env) else {
        fail(.standardError(format: nil), "PROV_LOG_FORMAT takes text or json, not a value of \(env.utf8.count) bytes")
    }
    format = f
}
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--config": configPath = args.isEmpty ? nil : args.removeFirst()
    case "--log-format":
        guard let f = args.isEmpty ? nil : NodeLog.Format(rawValue: args.removeFirst()) else {
            fail(.standardError(format: format), "--log-format takes text or json\n\(usage)")
        }
        format = f
    case "-h", "--help", "help":
        print(
            """
            provd: one company's ProvenanceLedger node: its own log, a verified copy of every other member's log,
            replication with its peers over mutual TLS, and the HTTP API for the company's applications.

            \(usage)

              --config FILE        the node's node.json (made by `prov nodes init`; Specs/protocol.md §2.2)
              --log-format FORMAT  text or json on stderr (default: text on a terminal, json otherwise;
                                   also PROV_LOG_FORMAT)

            On start it prints one line on stdout: {"org":…,"peer":"host:port","api":"host:port"}.
            SIGTERM/SIGINT stop it cleanly (exit 0); SIGHUP re-reads peerAddresses, key and nextKey from node.json.
            Exit codes: 0 clean stop, 2 configuration, key, data directory or port error.
            """)
        exit(0)
    default: fail(.standardError(format: format), "unknown argument '\(a.prefix(40))'\n\(usage)")
    }
}
let log = NodeLog.standardError(format: format)
guard let configPath else { fail(log, "missing --config\n\(usage)") }

// Stop signals are taken from the start: a SIGTERM during start-up stops the node as soon as it is up.
let signals = prov_hangup_signal_install()
signal(SIGPIPE, SIG_IGN)

/// Opens the node and binds its listeners, or says why not and exits 2.
func startServer(_ path: String) -> NodeServer {
    do {
        return try NodeServer.start(config: try NodeConfig.load(path), log: log)
    } catch let e as LedgerError {
        fail(log, e.message)
    } catch {
        fail(log, "\(error)")
    }
}

/// SIGHUP: new peer addresses, and the signing keys (`key`, `nextKey`), from node.json.
func reload(_ server: NodeServer, _ path: String) {
    do {
        let c = try NodeConfig.load(path)
        server.node.reloadKeys(c)
        server.node.updatePeerAddresses(c.peerAddresses)
        log.info("peer addresses re-read", ["file": path])
    } catch {
        log.error("SIGHUP: cannot re-read the configuration; keeping the old addresses", ["reason": error.message])
    }
}

let server = startServer(configPath)
let ready = JSONValue.object([
    JSONMember("org", .string(server.node.config.org)),
    JSONMember("peer", .string(server.peerAddress.description)),
    JSONMember("api", .string(server.apiAddress.description)),
])
var line = ready.serialized + "\n"
line.withUTF8 { b in _ = write(1, b.baseAddress!, b.count) }

// Wait for signals: SIGHUP reloads peer addresses, SIGTERM/SIGINT stop.
var byte: UInt8 = 0
var pfd = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
loop: while true {
    if poll(&pfd, 1, -1) < 0 {
        if errno == EINTR { continue }
        break
    }
    while read(signals, &byte, 1) == 1 {
        if byte == UInt8(ascii: "H") { reload(server, configPath) } else { break loop }
    }
}
log.info("stopping on signal: finishing the group commit in flight")
server.stop()
exit(0)
