/** Scale-out: grids, experiments and zoos as BullMQ jobs on Redis, run by workers on any number of machines. */
export { parseQueueUrl, connectRedis, checkRedis, type QueueUrl } from './connection.js';
export { BlobStore, checkBlobRef, type BlobRef } from './blobs.js';
export { Coordinator, JobFailed, jobId, type CoordinatorOptions, type Done, type WorkerInfo } from './coordinator.js';
export { startWorker, type WorkerOptions, type RunningWorker } from './worker.js';
export { JOB_KINDS } from './kinds.js';
export type { JobKind, JobData, JobReturn, WorkerEnv, DataRef, DataIdentity } from './jobs.js';
export { stitchDispatch } from './stitch.js';
export { ckaOnQueue, type CkaQueueJob } from './cka.js';
export { legoExperimentOnQueue } from './lego.js';
export { queueZooMaker } from './zoo.js';
export { queueStatus, cancelRun, clearQueue, type QueueStatus, type RunStatus } from './admin.js';
