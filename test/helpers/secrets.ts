import { execFileSync } from "node:child_process";

/**
 * The files under `root` (not under any of `skipDirs`, given as absolute paths) that
 * contain any of `patterns`. Read with python's SEEK_DATA/SEEK_HOLE so that a sparse
 * 8 GiB state disk costs only its written extents, not 8 GiB of zeros.
 */
export function filesContaining(
  root: string,
  patterns: string[],
  skipDirs: string[] = [],
): string[] {
  const out = execFileSync(
    "python3",
    ["-c", SCAN, root, JSON.stringify(patterns), JSON.stringify(skipDirs)],
    {
      encoding: "utf8",
      maxBuffer: 16 << 20,
    },
  );
  return out.split("\n").filter(Boolean);
}

const SCAN = String.raw`
import json, os, sys
root, patterns, skip = sys.argv[1], [p.encode() for p in json.loads(sys.argv[2])], set(json.loads(sys.argv[3]))
overlap = max(len(p) for p in patterns)
BLOCK = 1 << 20

def segments(fd, size):
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end

def contains(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        for start, end in segments(fd, size):
            tail = b""
            position = start
            while position < end:
                block = os.pread(fd, min(BLOCK, end - position), position)
                if not block:
                    break
                data = tail + block
                if any(p in data for p in patterns):
                    return True
                tail = data[-overlap:]
                position += len(block)
        return False
    finally:
        os.close(fd)

for directory, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if os.path.join(directory, d) not in skip]
    for name in files:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and not os.path.islink(path) and contains(path):
            print(path)
`;
