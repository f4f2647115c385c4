import { readFileSync } from 'node:fs';
import {
  actorApiContract,
  FULL_REPORT_MAX_VALUES,
  MAX_REPORTED_PROBLEMS,
  MAX_START_EDGES,
} from '../../api/validate.js';
import { isPortalError } from '../../common/errors.js';

// The actor API contract (api/schemas/) as the hosts apply it: every problem at once, each with its JSON Pointer.

const manifest = {
  version: 1,
  id: '0123456789abcdef',
  name: 'f.bin',
  fileSize: 10,
  chunkSize: 4096,
  fileSha256: 'a'.repeat(64),
  chunks: ['b'.repeat(64)],
};
const good = {
  transferId: 't1',
  manifest,
  output: '/tmp/out.bin',
  edges: [{ id: 'e1', config: { url: 'http://127.0.0.1:1', kind: 'portal', flags: 0, maxParallel: 4 } }],
};

function problemsOf(fn: () => void): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    if (isPortalError(err, 'PORTAL_INVALID_ARGUMENT')) return [...(err.fields ?? [])];
    throw err;
  }
  throw new Error('expected PORTAL_INVALID_ARGUMENT');
}

describe('actor API contract', () => {
  const c = actorApiContract();

  test('a well-formed TransferRequest passes', () => {
    expect(() => c.checkRequest('SchedulerActor', 'start', good)).not.toThrow();
  });

  test('a start with several mistakes reports every one with its field path, not only the first', () => {
    const bad = {
      ...good,
      tickMs: 'fast',
      output: undefined,
      tickms: 5,
      edges: [{ id: 'e1', config: { url: 'ftp://x', kind: 'carrier-pigeon', flags: 0, maxParallel: -1 } }],
    };
    const p = problemsOf(() => c.checkRequest('SchedulerActor', 'start', bad));
    expect(p).toEqual(
      expect.arrayContaining([
        { path: '/tickMs', message: 'must be number' },
        { path: '/output', message: 'is required' },
        { path: '/tickms', message: 'is not a known field' },
        { path: '/edges/0/config/url', message: expect.stringContaining('must match pattern') },
        { path: '/edges/0/config/kind', message: 'must be one of "portal", "mirror"' },
        { path: '/edges/0/config/maxParallel', message: 'must be >= 0' },
      ]),
    );
    expect(p).toHaveLength(6);
  });

  test('scalars and missing bodies are named as the body itself', () => {
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'start', 5))).toEqual([
      { path: '', message: 'must be object' },
    ]);
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'start', undefined))).toEqual([
      { path: '', message: 'is required' },
    ]);
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'cancel', 'text'))).toEqual([
      { path: '', message: 'must be absent: this method takes no argument' },
    ]);
    expect(() => c.checkRequest('SchedulerActor', 'cancel', null)).not.toThrow();
    // status takes an optional argument: absent, null or an object of known fields
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'status', 'text'))).toEqual([
      { path: '', message: 'must be object' },
    ]);
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'status', { edge: true }))).toEqual([
      { path: '/edge', message: 'is not a known field' },
    ]);
    for (const arg of [undefined, null, {}, { edges: true }])
      expect(() => c.checkRequest('SchedulerActor', 'status', arg)).not.toThrow();
  });

  test('a huge invalid body (200 000 bad edges, 4 MB) is refused with its first problem, in time linear in its size', () => {
    // ajv's full report is quadratic in the problems: this body held a host's event loop for minutes
    const edges = Array.from({ length: 200_000 }, () => ({ a: 'b' }));
    const fields = problemsOf(() =>
      c.checkRequest('SchedulerActor', 'start', { ...good, manifest: { bad: 1 }, edges }),
    );
    expect(fields).toHaveLength(2);
    expect(fields[1]).toEqual({
      path: '',
      message: `has more than ${FULL_REPORT_MAX_VALUES} values: only its first problem is reported`,
    });
    // a body under the limit still gets every problem
    const few = problemsOf(() =>
      c.checkRequest('SchedulerActor', 'start', { ...good, edges: [{ a: 'b' }, { a: 'c' }] }),
    );
    expect(few.filter((p) => p.path.startsWith('/edges/0')).length).toBeGreaterThan(0);
    expect(few.filter((p) => p.path.startsWith('/edges/1')).length).toBeGreaterThan(0);
  }, 20_000);

  test('a start names at most MAX_START_EDGES (1024) edges; the refusal names the cap', () => {
    const edge = (i: number) => ({
      id: `e${i}`,
      config: { url: `http://127.0.0.1:${1 + (i % 60000)}`, kind: 'mirror', flags: 0, maxParallel: 4 },
    });
    expect(MAX_START_EDGES).toBe(1024);
    const atCap = Array.from({ length: MAX_START_EDGES }, (_, i) => edge(i));
    expect(() => c.checkRequest('SchedulerActor', 'start', { ...good, edges: atCap })).not.toThrow();
    expect(
      problemsOf(() =>
        c.checkRequest('SchedulerActor', 'start', { ...good, edges: [...atCap, edge(MAX_START_EDGES)] }),
      ),
    ).toEqual([{ path: '/edges', message: 'must NOT have more than 1024 items' }]);
    // the edge-telemetry stream kernel's edges and edgeIds have the same cap
    const ids = atCap.map((e) => e.id);
    expect(() =>
      c.checkRequest('GpuStreamActor', 'start', {
        kernel: { type: 'edge-telemetry', edges: 1024, edgeIds: ids },
      }),
    ).not.toThrow();
    expect(
      problemsOf(() =>
        c.checkRequest('GpuStreamActor', 'start', {
          kernel: { type: 'edge-telemetry', edges: 1025, edgeIds: [...ids, 'x'] },
        }),
      ),
    ).toEqual(
      expect.arrayContaining([
        { path: '/kernel/edges', message: 'must be <= 1024' },
        { path: '/kernel/edgeIds', message: 'must NOT have more than 1024 items' },
      ]),
    );
    // the schema files hold the constant's value
    const schema = (f: string) =>
      JSON.parse(readFileSync(new URL(`../../api/schemas/${f}`, import.meta.url), 'utf8')) as {
        $defs: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      };
    expect(schema('SchedulerActor.json').$defs.TransferRequest.properties.edges.maxItems).toBe(
      MAX_START_EDGES,
    );
    const kernel =
      schema('GpuStreamActor.json').$defs.GpuStreamStartRequest.properties.kernel.oneOf[0].properties;
    expect([kernel.edges.maximum, kernel.edgeIds.maxItems]).toEqual([MAX_START_EDGES, MAX_START_EDGES]);
  });

  test('an error lists at most MAX_REPORTED_PROBLEMS (100) problems, then one entry counting the rest', () => {
    // 1000 edges of an unknown field, each missing id and config: 3000 problems in a body of ~2000 values
    const edges = Array.from({ length: 1000 }, () => ({ a: 'b' }));
    let message = '';
    const fields = problemsOf(() => {
      try {
        c.checkRequest('SchedulerActor', 'start', { ...good, edges });
      } catch (err) {
        message = (err as Error).message;
        throw err;
      }
    });
    expect(MAX_REPORTED_PROBLEMS).toBe(100);
    expect(fields).toHaveLength(MAX_REPORTED_PROBLEMS + 1);
    expect(fields[MAX_REPORTED_PROBLEMS]).toEqual({
      path: '',
      message: 'and 2900 more problems (at most 100 are listed)',
    });
    expect(fields.slice(0, 3)).toEqual([
      { path: '/edges/0/id', message: 'is required' },
      { path: '/edges/0/config', message: 'is required' },
      { path: '/edges/0/a', message: 'is not a known field' },
    ]);
    expect(message).toMatch(/^SchedulerActor\.start: 3000 problems: /);
  });

  test('every external method of every actor type has compiled request and response schemas', () => {
    const types = Object.keys(c.methods).sort();
    expect(types).toEqual([
      'CoordinatorActor',
      'EdgeActor',
      'GpuStreamActor',
      'GpuWorkerActor',
      'SchedulerActor',
    ]);
    for (const t of types)
      for (const [name, m] of Object.entries(c.methods[t])) {
        expect(typeof m.description).toBe('string');
        if (m.external) expect(m.response === null ? name : m.response).toBeTruthy();
      }
    expect(c.method('SchedulerActor', 'reports')?.external).toBe(false);
    expect(c.method('SchedulerActor', 'forget')?.external).toBe(true);
  });

  test('internal methods and types outside the contract are left to the host', () => {
    expect(() => c.checkRequest('SchedulerActor', 'reports', { items: [] })).not.toThrow();
    expect(() => c.checkRequest('ProbeActor', 'anything', 5)).not.toThrow();
  });
});

describe('manifest by reference', () => {
  const c = actorApiContract();
  const { manifest: _inline, ...rest } = good;

  test('a start takes manifestUrl instead of the manifest', () => {
    for (const manifestUrl of ['https://edge/m.json', 'file:///data/m.json', '/data/m.json'])
      expect(() => c.checkRequest('SchedulerActor', 'start', { ...rest, manifestUrl })).not.toThrow();
  });

  test('a start takes manifestCid (sha-256 of the binary manifest) instead of the manifest', () => {
    const manifestCid = 'ab'.repeat(32);
    expect(() => c.checkRequest('SchedulerActor', 'start', { ...rest, manifestCid })).not.toThrow();
    expect(
      problemsOf(() => c.checkRequest('SchedulerActor', 'start', { ...rest, manifestCid: 'AB'.repeat(32) })),
    ).toEqual([{ path: '/manifestCid', message: 'must match pattern "^[0-9a-f]{64}$"' }]);
    expect(
      problemsOf(() =>
        c.checkRequest('SchedulerActor', 'start', { ...rest, manifestCid, manifestUrl: '/m' }),
      ),
    ).toEqual([{ path: '', message: 'must match exactly one schema in oneOf' }]);
  });

  test('a start whose edge URL has an upper-case scheme (HTTP://, RFC 3986 §3.1) passes the contract; ftp:// does not', () => {
    const edge = (url: string) => ({
      ...good,
      edges: [{ ...good.edges[0], config: { ...good.edges[0].config, url } }],
    });
    expect(() => c.checkRequest('SchedulerActor', 'start', edge('HTTPS://edge.example/f.bin'))).not.toThrow();
    expect(
      problemsOf(() => c.checkRequest('SchedulerActor', 'start', edge('ftp://edge.example/f.bin'))),
    ).toEqual([{ path: '/edges/0/config/url', message: 'must match pattern "^[Hh][Tt][Tt][Pp][Ss]?://"' }]);
  });

  test('a start with none of the three, or with two, is refused naming every field', () => {
    expect(problemsOf(() => c.checkRequest('SchedulerActor', 'start', rest))).toEqual([
      { path: '/manifest', message: 'is required' },
      { path: '/manifestUrl', message: 'is required' },
      { path: '/manifestCid', message: 'is required' },
    ]);
    const both = problemsOf(() =>
      c.checkRequest('SchedulerActor', 'start', { ...good, manifestUrl: 'https://edge/m.json' }),
    );
    expect(both).toEqual([{ path: '', message: 'must match exactly one schema in oneOf' }]);
    expect(
      problemsOf(() => c.checkRequest('SchedulerActor', 'start', { ...rest, manifestUrl: 'ftp://x' })),
    ).toEqual([{ path: '/manifestUrl', message: 'must match pattern "^(https?://|file://|/)"' }]);
  });
});
