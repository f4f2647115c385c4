// ESLint flat config: typescript-eslint's type-aware recommended rules over every TypeScript area.
// Formatting is Prettier's job (`npm run lint:format`), so no stylistic rules here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'coverage/',
      '.cache/',
      'proto/generated/',
      'examples/',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Async methods that implement a Promise-returning interface (state stores, buses, actor
      // methods) often have nothing to await; making them non-async would change how they throw.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Only bus/ loads the NATS client; other areas go through its Bus and PausablePullClient interfaces.
    // Tests (raw bytes, nkeys) and benchmarks (raw-client baselines) may use it directly.
    files: ['**/*.ts'],
    ignores: ['bus/**', 'test/**', 'bench/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['@nats-io/*'], message: 'only bus/ loads the NATS client: use bus/index.js' }],
        },
      ],
    },
  },
  {
    // Tests read JSON from real servers and processes (typed `any` by JSON.parse) and assert on it.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
