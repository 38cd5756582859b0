import Dispatch
import Foundation
import Synchronization

/// A fixed number of threads running submitted jobs in order of submission.
final class WorkerPool: Sendable {
    typealias Job = @Sendable () -> Void

    private struct Queue {
        var jobs: [Job?] = []
        var head = 0
        var stopping = false
    }

    private let queue = Mutex(Queue())
    private let available = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let threads: Int

    init(threads: Int, name: String) {
        self.threads = threads
        for i in 0..<threads {
            let thread = Thread { [self] in run() }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    func submit(_ job: @escaping Job) {
        queue.withLock { $0.jobs.append(job) }
        available.signal()
    }

    private func run() {
        while true {
            available.wait()
            let job: Job? = queue.withLock { q in
                guard q.head < q.jobs.count else { return nil }
                let j = q.jobs[q.head]
                q.jobs[q.head] = nil
                q.head += 1
                if q.head == q.jobs.count || q.head > 1024 {
                    q.jobs.removeFirst(q.head)
                    q.head = 0
                }
                return j
            }
            guard let job else { break }  // a stop token
            job()
        }
        exited.signal()
    }

    /// Lets queued jobs finish, then ends the threads; waits for them until `deadline`. Returns whether every thread
    /// ended in time (a handler that never returns keeps its thread).
    @discardableResult
    func stop(waitingUntil deadline: DispatchTime) -> Bool {
        let first = queue.withLock { q -> Bool in
            defer { q.stopping = true }
            return !q.stopping
        }
        guard first else { return true }
        // One semaphore signal per thread with no job behind it: each ends one thread after the queue drains.
        for _ in 0..<threads { available.signal() }
        for _ in 0..<threads where exited.wait(timeout: deadline) == .timedOut { return false }
        return true
    }
}
