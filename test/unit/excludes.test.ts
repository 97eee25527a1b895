// Unit tests for the rsync exclude matcher, one block per rule of rsync's
// PATTERN MATCHING RULES. Expectations follow rsync 3.2.7 (several were
// checked by hand against the binary; excludes-rsync.test.ts does so at random).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileExcludes, excludePatternProblem, ExcludePatternError } from '../../src/rsync/excludes.js';

/** Paths as [rel, isDir]; a bare string is a file. */
type P = string | [string, boolean];

function check(patterns: string[], excluded: P[], kept: P[]): void {
  const m = compileExcludes(patterns);
  for (const p of excluded) {
    const [rel, isDir] = typeof p === 'string' ? [p, false] : p;
    assert.equal(m.isExcluded(rel, isDir), true, `${JSON.stringify(patterns)} should exclude ${isDir ? 'dir' : 'file'} ${JSON.stringify(rel)}`);
  }
  for (const p of kept) {
    const [rel, isDir] = typeof p === 'string' ? [p, false] : p;
    assert.equal(m.isExcluded(rel, isDir), false, `${JSON.stringify(patterns)} should keep ${isDir ? 'dir' : 'file'} ${JSON.stringify(rel)}`);
  }
}

function self(patterns: string[], rel: string, isDir: boolean): boolean {
  return compileExcludes(patterns).matchesSelf(rel, isDir);
}

describe('anchoring', () => {
  test('a leading "/" anchors at the transfer root', () => {
    check(['/foo'], ['foo', ['foo', true], 'foo/x', 'foo/x/y'], ['a/foo', 'foox', 'xfoo', ['a/foo', true]]);
    check(['/a/b'], ['a/b', ['a/b', true], 'a/b/c'], ['x/a/b', 'a/bb', 'a', ['a', true]]);
  });

  test('without "/" a name matches the last component at any depth', () => {
    check(['foo'], ['foo', 'a/foo', 'a/b/foo', ['a/foo', true], 'a/foo/b'], ['foox', 'xfoo', 'foo.c', 'a/xfoo']);
  });

  test('an inner "/" matches whole trailing components, still unanchored', () => {
    check(['a/b'], ['a/b', 'x/a/b', 'x/y/a/b', 'a/b/c'], ['xa/b', 'a/bc', 'a', 'b', 'a/x/b']);
    check(['a/b/c'], ['a/b/c', 'q/a/b/c'], ['b/c', 'a/b', 'qa/b/c']);
  });
});

describe('trailing slash', () => {
  test('matches directories only', () => {
    check(['foo/'], [['foo', true], ['a/foo', true], 'foo/x', 'a/foo/b/c'], ['foo', 'a/foo', ['foox', true]]);
    check(['/foo/'], [['foo', true], 'foo/x'], ['foo', ['a/foo', true]]);
    check(['a/b/'], [['a/b', true], ['x/a/b', true], 'a/b/f'], ['a/b', 'x/a/b']);
  });

  test('a file below an excluded directory is excluded, but does not match by itself', () => {
    assert.equal(self(['foo/'], 'foo/x', false), false);
    assert.equal(self(['foo/'], 'foo', true), true);
    assert.equal(self(['foo/'], 'foo', false), false);
  });
});

describe('"*"', () => {
  test('matches anything but "/"', () => {
    check(['*.o'], ['x.o', '.o', 'a/b/x.o', ['d.o', true], 'd.o/inner'], ['x.oo', 'x.o.c', 'x/o', 'xo']);
    check(['a*c'], ['ac', 'abc', 'a.b.c', 'q/abbc'], ['a/c', 'ab/c', 'abcd']);
    check(['a/*/c'], ['a/b/c', 'q/a/b/c'], ['a/c', 'a/b/d/c', 'a/b/cd']);
  });

  test('"*" and "/*" exclude everything', () => {
    check(['*'], ['a', ['a', true], 'a/b/c', ' '], []);
    check(['/*'], ['a', ['a', true], 'a/b/c'], []);
  });

  test('many stars stay fast on long names', () => {
    const m = compileExcludes(['*a*a*a*a*a*a*b', '**a**a**a**a**b', '**a*a*a*b']);
    const name = 'a'.repeat(250);
    const deep = Array.from({ length: 16 }, () => name).join('/');
    const t0 = performance.now();
    assert.equal(m.isExcluded(deep, false), false);
    assert.equal(m.isExcluded(deep + 'b', false), true);
    assert.ok(performance.now() - t0 < 10_000, "matching took too long (catastrophic backtracking?)");
  });
});

describe('"**"', () => {
  test('matches across "/"', () => {
    check(['a/**'], ['a/b', 'a/b/c', 'x/a/b'], [['a', true], 'a', 'ab/c']);
    check(['**'], ['a', ['a', true], 'a/b/c'], []);
    check(['a**'], ['a', 'ab', 'x/ab', 'x/a/b'], ['ba', 'x/ba']);
  });

  test('with "**" the full path is matched, starting at a component boundary', () => {
    check(['b**z'], ['bz', 'b/z', 'q/b/x/z', 'q/bxz'], ['ab/z', 'qb/z']);
  });

  test('the earliest fitting component is the one that counts', () => {
    check(['?**/'], ['a/b', ['a', true], 'ab/c/d'], ['a', 'ab']);
    check(['a*b**c'], ['ab/c', 'xab/axb/yc', 'q/axxb/c'], ['a/b/c', 'ab/b']);
    check(['*a*/**/b*'], ['xa/y/bz', 'q/a/r/s/b'], ['a/b', 'xa/b']);
  });

  test('"/a/**/b" needs at least one directory in between', () => {
    check(['/a/**/b'], ['a/x/b', 'a/x/y/b', 'a/x/b/c'], ['a/b', 'q/a/x/b']);
  });

  test('a leading "**/" also matches at the top', () => {
    check(['**/b'], ['b', 'x/b', 'x/y/b', 'b/c'], ['ab', 'x/ab']);
    check(['**b'], ['b', 'ab', 'x/ab', 'x/b'], ['ba']);
  });
});

describe('"?"', () => {
  test('matches one character other than "/"', () => {
    check(['?'], ['a', ' ', 'xy/a', 'a/xy'], ['ab', 'xy/ab']);
    check(['a?c'], ['abc', 'a c', 'a*c'], ['ac', 'abbc', 'a/c']);
  });

  test('matches one byte: a multi-byte UTF-8 character takes several', () => {
    check(['?'], [], ['é', '日']);
    check(['??'], ['é', 'ab'], ['日', 'a']);
    check(['???'], ['日', 'aé'], ['é']);
  });
});

describe('character classes', () => {
  test('sets, ranges and negation', () => {
    check(['[ab]'], ['a', 'b'], ['c', 'ab', 'A']);
    check(['[a-c]x'], ['ax', 'bx', 'cx'], ['dx', '-x']);
    check(['[!a]'], ['b', ' ', '-'], ['a', 'é']);
    check(['[^a]'], ['b'], ['a']);
    check(['[!a][!a]'], ['é', 'bc'], ['ab']);
  });

  test('"]" first is a member, "-" at either end is literal', () => {
    check(['[]a]'], [']', 'a'], ['b', '[']);
    check(['[!]]'], ['a'], [']']);
    check(['[a-]'], ['a', '-'], ['b']);
    check(['[-a]'], ['a', '-'], ['b']);
    check(['[\\]]'], [']'], ['\\']);
    check(['[\\\\]'], ['\\'], [']']);
  });

  test('POSIX classes are ASCII only', () => {
    check(['[[:alpha:]]'], ['a', 'Z'], ['1', 'é', '_']);
    check(['[[:digit:]][[:upper:]]'], ['1A'], ['1a', 'AA']);
    check(['[[:space:]]'], [' ', '\t', '\n'], ['a']);
    check(['a[[:cntrl:]]b'], ['a\nb', 'a\tb'], ['a b']);
    check(['[[:punct:]]'], ['!', '*', '['], ['a', ' ']);
    check(['[[:xdigit:]][[:alnum:]]'], ['f0', 'A9'], ['g0', 'f-']);
  });

  test('"[[:" without ":]" is a plain "[" member', () => {
    check(['[[:]x'], ['[x', ':x'], ['x', '[[:]x']);
  });

  test('classes never match "/"', () => {
    check(['a[!b]c'], ['axc'], ['a/c', 'abc']);
  });
});

describe('"***"', () => {
  test('"dir/***" matches the directory and everything below it', () => {
    check(['dir/***'], [['dir', true], 'dir/x', ['dir/x', true], 'dir/x/y', ['q/dir', true]], ['dir', 'dirx', ['dirx', true]]);
    assert.equal(self(['dir/***'], 'dir/x', false), true);
    assert.equal(self(['dir/***'], 'dir', false), false);
  });

  test('anchored', () => {
    check(['/dir/***'], [['dir', true], 'dir/x'], [['q/dir', true], 'q/dir/x']);
  });

  test('without a "/" before it, it is "**" that also takes the directory', () => {
    check(['a***'], ['a', 'ab', ['a', true], 'a/b', 'q/ab'], ['ba']);
  });
});

describe('backslash', () => {
  test('is literal in a pattern without wildcards', () => {
    check(['foo\\bar'], ['foo\\bar', 'x/foo\\bar'], ['foobar']);
    check(['x\\'], ['x\\'], ['x']);
  });

  test('escapes the next character once the pattern has a wildcard', () => {
    check(['foo\\bar*'], ['foobar', 'foobarx'], ['foo\\bar', 'foo\\barx']);
    check(['foo\\\\*'], ['foo\\', 'foo\\x'], ['foox']);
    check(['a\\*'], ['a*'], ['ab', 'a']);
    check(['a\\?'], ['a?'], ['ab']);
    check(['\\[x]'], ['[x]'], ['x']);
    check(['a\\*b*'], ['a*b', 'a*bc'], ['axb']);
  });
});

describe('ancestors', () => {
  test('an excluded directory takes everything below it', () => {
    check(['node_modules'], ['node_modules', 'a/node_modules/b/c.js', ['x/node_modules/y', true]], ['a/node_modules2/b']);
    check(['build/'], ['build/x', 'a/build/b/c'], ['build', 'a/build']);
    check(['/a/b'], ['a/b/c/d'], ['x/a/b/c']);
  });

  test('matchesSelf looks at the path alone', () => {
    assert.equal(self(['node_modules'], 'a/node_modules/b', false), false);
    assert.equal(self(['node_modules'], 'a/node_modules', true), true);
    assert.equal(self(['*.tmp'], 'x.tmp/y', false), false);
    assert.equal(self(['*.tmp'], 'x.tmp', false), true);
    assert.equal(self(['a/**'], 'a/b', false), true);
    assert.equal(self(['a/**'], 'a', true), false);
  });

  test('the transfer root is never excluded', () => {
    const m = compileExcludes(['*', '**', '/*']);
    assert.equal(m.isExcluded('', true), false);
    assert.equal(m.matchesSelf('', true), false);
  });

  test('a 100-level deep path', () => {
    const dirs = Array.from({ length: 100 }, (_, i) => `d${i}`);
    const deep = dirs.join('/') + '/file';
    check(['d50/'], [deep, [dirs.slice(0, 51).join('/'), true]], [[dirs.slice(0, 50).join('/'), true]]);
    check(['/d0/d1'], [deep], []);
    check(['/d1'], [], [deep]);
    check(['d99/file'], [deep], []);
    check(['**/d77/**'], [deep], [[dirs.slice(0, 78).join('/'), true]]);
    check(['nope', '*.c', 'd100/'], [], [deep]);
    assert.equal(self(['d50/'], deep, false), false);
  });
});

describe('odd names', () => {
  test('spaces, leading "-", "#" and ";"', () => {
    check(['my file'], ['my file', 'a/my file'], ['my', 'myfile']);
    check(['* file '], ['a file ', 'x/ file '], ['a file']);
    check(['-rf'], ['-rf', 'a/-rf'], ['rf']);
    check(['[-] x'], ['- x'], ['x']);
    check(['-*'], ['-', '-x'], ['x-']);
    check(['#*#', ';*'], ['#x#', 'a/#x#', ';x'], ['#x', 'x;']);
  });

  test('unicode', () => {
    check(['日本/*.txt'], ['日本/a.txt', 'x/日本/é.txt'], ['日本.txt', '日本/a.txt.gz']);
    check(['é*'], ['é', 'éé', 'x/éa'], ['e', 'aé']);
    check(['[é]'], [], ['é']);
  });

  test('newlines in names', () => {
    check(['a?b'], ['a\nb'], ['ab']);
    check(['*'], ['\n', 'a/\n/b'], []);
    check(['line*'], ['line\n', 'line\nmore/x'], ['\nline']);
    check(['x'], ['x', 'x/\n'], ['x\n', '\nx']);
  });

  test('wildcard characters inside names', () => {
    check(['a\\*b'], ['a*b'], ['axb']);
    check(['a*b'], ['a*b', 'axb'], []);
    check(['x\\[1]'], ['x[1]'], ['x1']);
    check(['x[1]'], ['x1'], ['x[1]']);
    check([']'], [']'], ['[']);
    check(['a?'], ['a?', 'a*', 'a['], ['a']);
    check(['*\\\\*'], ['a\\b', '\\'], ['ab']);
  });
});

describe('several patterns', () => {
  test('any match excludes; none means kept', () => {
    check(['*.o', '/build/', 'tmp'], ['x.o', 'build/a', 'a/tmp/b'], ['a/build/x', 'x.c', 'build']);
    check([], [], ['a', ['a', true], 'a/b']);
  });
});

describe('validation', () => {
  const refused: [string, RegExp][] = [
    ['', /empty/],
    ['a\nb', /newline/],
    ['a\rb', /carriage return/],
    ['a\0b', /NUL/],
    ['- x', /rule prefix/],
    ['+ x', /rule prefix/],
    ['!', /clear/],
    ['/', /root/],
    ['a//b', /empty path component/],
    ['./a', /"\." or "\.\."/],
    ['a/../b', /"\." or "\.\."/],
    ['foo[', /unterminated/],
    ['[!]', /unterminated/],
    ['[[:nope:]]', /unknown character class/],
    ['x*\\', /backslash/],
    ['a[/]b', /inside a \[\.\.\.\] class/],
    ['a[x/]*', /inside a \[\.\.\.\] class/],
    ['a\\b/', /backslash/],
    ['**/', /top-level files/],
    ['x***/', /"\*\*\*\/"/],
    ['a\ud800', /Unicode/],
    ['x'.repeat(5000), /longer than/],
  ];
  for (const [p, why] of refused) {
    test(`refuses ${JSON.stringify(p.length > 20 ? p.slice(0, 20) + '...' : p)}`, () => {
      assert.match(excludePatternProblem(p) ?? 'accepted', why);
      assert.throws(
        () => compileExcludes(['ok', p]),
        (err: unknown) => err instanceof ExcludePatternError && err.pattern === p && err.message.includes(JSON.stringify(p)),
      );
    });
  }

  test('accepts ordinary and unusual but sound patterns', () => {
    for (const p of ['a', 'x\\', '[#]x', '#x', ';x', '!x', '-x', 'a b ', '**', '*/', 'dir/***', '日本', '/a/b/', '[\\\\]/', '\\#x*']) {
      assert.equal(excludePatternProblem(p), null, p);
    }
  });
});
