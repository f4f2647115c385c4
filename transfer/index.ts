/** Transfer: content ids, manifests, bandwidth caps, edges, the chunk fetcher, the output writer and the executor. */
export { cidOf, isCid, verifyChunk, NO_CID, isNoCid } from './cid.js';
export { CidTable, CID_BYTES } from './cid-table.js';
export {
  createManifest,
  createPackedManifest,
  packManifest,
  unpackManifest,
  manifestChunkCount,
  saveManifest,
  writeManifestParts,
  loadManifest,
  parseManifest,
  refuseUnknownHashes,
  manifestId,
  chunkCount,
  chunkRange,
  MIN_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
  DEFAULT_MANIFEST_LIMITS,
} from './manifest.js';
export { hashCheck, HASH_CHECK_READ_BYTES, type HashCheckResult } from './hash-check.js';
export type { Manifest, PackedManifest, ManifestLimits, CreateManifestOptions } from './manifest.js';
export {
  BINARY_MANIFEST_MAGIC,
  BINARY_MANIFEST_MEDIA_TYPE,
  BINARY_MANIFEST_VERSION,
  BINARY_MANIFEST_HEADER_BYTES,
  BINARY_MANIFEST_MAX_CHUNKS,
  encodeBinaryManifest,
  encodeBinaryManifestHeader,
  binaryManifestParts,
  binaryManifestCid,
  isBinaryManifest,
  readBinaryManifest,
  decodeBinaryManifest,
  loadBinaryManifest,
  saveBinaryManifest,
} from './manifest-binary.js';
export type { BinaryManifestRead, ReadBinaryManifestOptions } from './manifest-binary.js';
export { loadManifestRef, fetchManifestByCid, MANIFEST_CID } from './manifest-ref.js';
export { createTokenBucket } from './token-bucket.js';
export type { TokenBucket, TokenBucketOptions } from './token-bucket.js';
export { encodeHaveBitmap, decodeHaveBitmap } from './have-bitmap.js';
export { createPrng } from './prng.js';
export { createEdgeServer, EDGE_SLICE_BYTES } from './edge-server.js';
export { askHoldings, fetchHave, haveAnswerLimit } from './edge-have.js';
export { createManifestStore, MANIFEST_DIR_MAX_FILES, MANIFEST_DIR_MAX_BYTES } from './manifest-store.js';
export type { ManifestStore, ManifestStoreOptions } from './manifest-store.js';
export type { EdgeServer, EdgeServerOptions, EdgeServerStats, EdgeFaults } from './edge-server.js';
export {
  ChunkFetchError,
  isChunkFetchError,
  isSizeChanged,
  isFileChanged,
  mentionsVersionChanged,
  versionChangedAnswer,
  sizeChangedDetail,
  versionChangedDetail,
  TRANSIENT_FAULTS,
} from './chunk-fetch-error.js';
export type { ChunkFetchErrorInfo, SourceFault } from './chunk-fetch-error.js';
export {
  fetchChunk,
  parseRetryAfter,
  parseContentRange,
  backoffMs,
  FETCH_TRANSIENT_RETRIES,
  FETCH_BACKOFF_BASE_MS,
  FETCH_BACKOFF_CAP_MS,
} from './http-fetch.js';
export {
  createHttpClient,
  defaultHttpClient,
  setDefaultHttpClient,
  redactUrl,
  HTTP_CONNECTIONS_PER_ORIGIN,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_REDIRECTS,
} from './http-client.js';
export {
  DEFAULT_LOWEST_SPEED_BYTES_PER_SEC,
  DEFAULT_SPEED_TIME_MS,
  LowestSpeedMonitor,
} from './lowest-speed.js';
export type { TooSlow } from './lowest-speed.js';
export type {
  HttpClient,
  HttpClientOptions,
  SendOptions,
  SendResult,
  ResponseHead,
  BodyReceiver,
  ReceiveResult,
} from './http-client.js';
export { ProxyError } from './http-proxy.js';
export { SKIP_LIMIT_BYTES } from './body-handler.js';
export type { BodyMode, ResponseHeaders } from './body-handler.js';
export type { FetchChunkRequest, FetchChunkResult, FetchChunkFn } from './http-fetch.js';
export { openChunkWriter, hashFile } from './chunk-writer.js';
export type { ChunkWriter } from './chunk-writer.js';
export { createExecutor } from './executor.js';
export {
  createDataPlane,
  DEFAULT_DATA_THREADS,
  DEFAULT_MAX_IN_FLIGHT_BYTES,
  DATA_GC_EVERY_BYTES,
} from './data-plane.js';
export type { DataPlane, DataPlaneOptions, DataPlaneStats } from './data-plane.js';
export type { Executor, ExecutorOptions, ExecutorStats } from './executor.js';
export {
  parseMetalink,
  loadMetalink,
  manifestFromMetalink,
  metalinkPiecesUnused,
  toMetalink,
  METALINK_NS,
  METALINK_MAX_BYTES,
} from './metalink.js';
export type { MetalinkFile, MetalinkReadOptions, MetalinkUrl } from './metalink.js';
export {
  probeSource,
  probeSources,
  PROBE_GRACE_MS,
  PROBE_TIMEOUT_MS,
  agreeOnSources,
  majoritySize,
  chooseChunkSize,
  probedManifest,
} from './probe-sources.js';
export type { SourceProbe, SourceAgreement, ProbeRound, DigestCandidate } from './probe-sources.js';
export {
  serveContent,
  streamContent,
  createContentServer,
  emptyContentStats,
  ReaderRates,
} from './content-server.js';
export type { ContentSink, StreamContentResult } from './content-server.js';
export type {
  ContentSource,
  ContentState,
  ContentServer,
  ContentServeOptions,
  ContentServerStats,
} from './content-server.js';
export { parseRange } from './http-range.js';
export type { RangeResult } from './http-range.js';
export { edgePutCredentialFromEnv, type EdgePutCredential } from './chunk-put.js';
