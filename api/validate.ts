import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { PortalError, type FieldProblem } from '../common/errors.js';

/**
 * Portal's actor API contract (api/schemas/, JSON Schema 2020-12; why JSON Schema and not protobuf: docs/api.md)
 * and the validator both actor HTTP APIs apply to a call's argument before anything is activated: every problem is
 * reported at once with its JSON Pointer (ajv with allErrors), as PORTAL_INVALID_ARGUMENT with `fields` (at most
 * MAX_REPORTED_PROBLEMS of them, then a count of the rest).
 */

/** One method's entry in api/schemas/methods.json. */
export interface ApiMethod {
  /** `<file>#/$defs/<Name>` of its argument; null: it takes none. */
  readonly request: string | null;
  /** `<file>#/$defs/<Name>` of its answer; null: no body. */
  readonly response: string | null;
  /** false for methods only Portal itself calls (timers, the bus, other actors). */
  readonly external: boolean;
  /** true when the argument (`request`) may also be left out (no body, or JSON null). */
  readonly optional?: boolean;
  readonly description: string;
}

/** Base URI of the schema files' `$id`s. */
export const SCHEMA_BASE = 'https://schemas.portal.invalid/v1/';

/** The folder of the schema files: beside this module (source) or in the source tree (dist/api/ has no JSON). */
function schemaDir(): string {
  const tries = [new URL('./schemas/', import.meta.url), new URL('../../api/schemas/', import.meta.url)];
  for (const u of tries) {
    try {
      readdirSync(fileURLToPath(u));
      return fileURLToPath(u);
    } catch {
      /* next location */
    }
  }
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `actor API schemas not found (looked in ${tries.map((u) => fileURLToPath(u)).join(', ')})`,
  );
}

/** The actor API contract: the methods of each actor type and validators of their arguments and answers. */
export interface ActorApiContract {
  /** methods.json's `actors`: type → method → entry. */
  readonly methods: Readonly<Record<string, Readonly<Record<string, ApiMethod>>>>;
  /** The entry of a method, or undefined for a type or method the contract does not list. */
  readonly method: (actorType: string, method: string) => ApiMethod | undefined;
  /**
   * Checks a call's argument against the method's request schema: returns when it fits, throws
   * PORTAL_INVALID_ARGUMENT with its problems in `fields` (at most MAX_REPORTED_PROBLEMS, then one entry counting
   * the rest) when it does not (an argument sent to a method that takes
   * none is one such problem). Internal methods and types or methods the contract does not list are not checked.
   */
  readonly checkRequest: (actorType: string, method: string, arg: unknown) => void;
  /** The problems of an answer against the method's response schema ([] when it fits); for tests and clients. */
  readonly responseProblems: (actorType: string, method: string, answer: unknown) => FieldProblem[];
}

/** The field problems of an ajv run, one per failed keyword, with readable messages. */
function problemsOf(errors: ErrorObject[] | null | undefined): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  // a oneOf that more than one branch matched (e.g. manifest and manifestUrl both given) is the problem itself:
  // what its other branches missed ("manifestCid is required") would mislead
  const tooMany = (errors ?? [])
    .filter((e) => e.keyword === 'oneOf' && (e.params as { passingSchemas?: unknown }).passingSchemas)
    .map((e) => `${e.schemaPath}/`);
  for (const e of errors ?? []) {
    if (tooMany.some((p) => e.schemaPath.startsWith(p))) continue;
    // a oneOf/anyOf failure repeats what its branches said; keep the branches' own problems
    if (e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'if') continue;
    let path = e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      path = `${path}/${(e.params as { missingProperty: string }).missingProperty}`;
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      path = `${path}/${(e.params as { additionalProperty: string }).additionalProperty}`;
      message = 'is not a known field';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (e.keyword === 'const') {
      message = `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    }
    const key = `${path}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message });
  }
  // every branch of a oneOf matched (e.g. both manifest and manifestUrl): that is the problem itself
  if (out.length === 0)
    for (const e of errors ?? [])
      if (tooMany.length === 0 || tooMany.includes(`${e.schemaPath}/`))
        out.push({ path: e.instancePath, message: e.message ?? 'is invalid' });
  return out;
}

/** "edges/0/config/url must match…; tickMs must be number" — the problems in one message, for logs and people. */
function summary(what: string, problems: readonly FieldProblem[]): string {
  const parts = problems.slice(0, 8).map((p) => `${p.path === '' ? '(body)' : p.path} ${p.message}`);
  const more = problems.length > 8 ? `; and ${problems.length - 8} more` : '';
  return `${what}: ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${parts.join('; ')}${more}`;
}

/**
 * Largest request body, counted in JSON values (objects, arrays and scalars), whose problems are all reported;
 * a larger invalid body gets its first problem only (see actorApiContract: ajv's full report is quadratic).
 */
export const FULL_REPORT_MAX_VALUES = 20_000;

/** Whether `x` holds at most `limit` JSON values; stops counting past the limit (linear, no recursion). */
function valuesAtMost(x: unknown, limit: number): boolean {
  const stack: unknown[] = [x];
  let n = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (++n > limit) return false;
    if (Array.isArray(v)) for (const item of v) stack.push(item);
    else if (v !== null && typeof v === 'object') for (const item of Object.values(v)) stack.push(item);
  }
  return true;
}

/**
 * Most edges a start may name: SchedulerActor.start's `edges` and GpuStreamActor.start's edge-telemetry `edges` /
 * `edgeIds` (the schemas' maxItems / maximum, which must equal it). A larger start is a 400 PORTAL_INVALID_ARGUMENT
 * whose problem names the cap ("/edges must NOT have more than 1024 items"): each edge costs the host an actor, a
 * column of the scheduler's tables and a probe, and no deployment has a thousand sources of one file.
 */
export const MAX_START_EDGES = 1024;

/**
 * Most problems an invalid request's error lists in `fields`; the rest are counted in one more entry (path "",
 * "and N more problems …"), so a body of a few thousand bad values cannot make an answer of thousands of entries.
 */
export const MAX_REPORTED_PROBLEMS = 100;

/** `problems` cut to MAX_REPORTED_PROBLEMS, plus one entry counting those left out. */
function capProblems(problems: FieldProblem[]): FieldProblem[] {
  if (problems.length <= MAX_REPORTED_PROBLEMS) return problems;
  const rest = problems.length - MAX_REPORTED_PROBLEMS;
  return [
    ...problems.slice(0, MAX_REPORTED_PROBLEMS),
    {
      path: '',
      message: `and ${rest} more problem${rest === 1 ? '' : 's'} (at most ${MAX_REPORTED_PROBLEMS} are listed)`,
    },
  ];
}

let contract: ActorApiContract | undefined;

/** Loads (once per process) the schema files and compiles a validator per referenced definition. */
export function actorApiContract(): ActorApiContract {
  if (contract) return contract;
  const dir = schemaDir();
  // two compilations of the same schemas: `first` stops at the first problem (linear in the body), `every`
  // reports them all; ajv's allErrors mode concatenates the error arrays of every $ref it leaves, which is
  // quadratic in the number of problems (a 4 MB body of 200 000 bad edges held the event loop for minutes), so
  // it runs only on bodies of at most FULL_REPORT_MAX_VALUES values
  const every = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  const first = new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true });
  let methodsDoc: { actors: Record<string, Record<string, ApiMethod>> } | undefined;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const doc = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as Record<string, unknown>;
    if (file === 'methods.json') methodsDoc = doc as unknown as typeof methodsDoc;
    else {
      every.addSchema(doc);
      first.addSchema(structuredClone(doc));
    }
  }
  if (!methodsDoc)
    throw new PortalError('PORTAL_CONFIG_INVALID', `actor API schemas: ${dir}/methods.json is missing`);
  const methods = methodsDoc.actors;
  const compiled = new Map<string, { every: ValidateFunction; first: ValidateFunction }>();
  const validators = (ref: string): { every: ValidateFunction; first: ValidateFunction } => {
    let v = compiled.get(ref);
    if (!v) {
      const e = every.getSchema(SCHEMA_BASE + ref);
      const f = first.getSchema(SCHEMA_BASE + ref);
      if (!e || !f)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `actor API schemas: no definition ${JSON.stringify(ref)}`,
        );
      v = { every: e, first: f };
      compiled.set(ref, v);
    }
    return v;
  };
  const validator = (ref: string): ValidateFunction => validators(ref).every;
  // compile every referenced definition now: a broken contract fails at start, not on the first call
  for (const type of Object.values(methods))
    for (const m of Object.values(type)) {
      if (m.request) validator(m.request);
      if (m.response) validator(m.response);
    }
  const method = (actorType: string, name: string): ApiMethod | undefined =>
    Object.hasOwn(methods, actorType) && Object.hasOwn(methods[actorType], name)
      ? methods[actorType][name]
      : undefined;
  contract = {
    methods,
    method,
    checkRequest: (actorType, name, arg) => {
      const m = method(actorType, name);
      if (!m?.external) return; // internal calls come from Portal itself, typed by its own code
      const what = `${actorType}.${name}`;
      if (m.request === null) {
        if (arg === undefined || arg === null) return;
        const fields = [{ path: '', message: 'must be absent: this method takes no argument' }];
        throw new PortalError('PORTAL_INVALID_ARGUMENT', summary(what, fields), { fields });
      }
      if (m.optional && (arg === undefined || arg === null)) return;
      const v = validators(m.request);
      if (v.first(arg)) return;
      let fields: FieldProblem[];
      if (arg === undefined) fields = [{ path: '', message: 'is required' }];
      else if (valuesAtMost(arg, FULL_REPORT_MAX_VALUES)) {
        v.every(arg);
        fields = problemsOf(v.every.errors);
      } else
        fields = [
          ...problemsOf(v.first.errors),
          {
            path: '',
            message: `has more than ${FULL_REPORT_MAX_VALUES} values: only its first problem is reported`,
          },
        ];
      throw new PortalError('PORTAL_INVALID_ARGUMENT', summary(what, fields), {
        fields: capProblems(fields),
      });
    },
    responseProblems: (actorType, name, answer) => {
      const m = method(actorType, name);
      if (!m?.response) return [];
      const v = validator(m.response);
      return v(answer) ? [] : problemsOf(v.errors);
    },
  };
  return contract;
}
