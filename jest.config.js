/** Jest runs the TypeScript sources directly (swc, ESM); `npm test` type-checks and builds first. */
export default {
  testEnvironment: 'node',
  // Jest 30's default ('soft') wraps every property of an object a test file left on its global in an accessor
  // whose setter calls itself for a data property (jest-util deleteProperty): a write after the file's teardown
  // from a callback of the shared worker process (a timer, a socket) then throws "Maximum call stack size
  // exceeded" into whichever test file runs at that moment. CI saw it fail test/security/dapr-allow-list.test.ts
  // ("Test suite failed to run"); Jest 29 deleted nothing either.
  testEnvironmentOptions: { globalsCleanup: 'off' },
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
        module: { type: 'es6' },
      },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  maxWorkers: 2,
};
