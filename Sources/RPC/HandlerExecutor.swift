import Dispatch

/// Where async handlers run: Dispatch's global queue instead of Swift's cooperative pool.
///
/// The cooperative pool has one thread per core (two here) and never grows, so any code in the
/// process that blocks one of its threads (a synchronous library call, a test that waits) would
/// stall every call of the server. Dispatch's global queue adds threads when its threads block.
/// A handler prefers this executor for its whole run (SE-0417), so it resumes here after every
/// await too.
final class HandlerExecutor: TaskExecutor {
    static let shared = HandlerExecutor()

    private let queue = DispatchQueue.global()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
