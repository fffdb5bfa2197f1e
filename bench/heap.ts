/**
 * `--heap[=system]`: what one open stream holds on the heap. Two V8 heap snapshots of the
 * system, after a forced GC — before a round and while its streams are all open and held —
 * and the difference per node kind and constructor, divided by the number of streams.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: string[];
      readonly node_types: [string[], ...unknown[]];
      readonly edge_fields: string[];
      readonly edge_types: [string[], ...unknown[]];
      readonly location_fields: string[];
    };
  };
  readonly nodes: number[];
  readonly edges: number[];
  readonly locations: number[];
  readonly strings: string[];
}

export interface HeapGroup {
  /**
   * `type:name`, e.g. `object:AbortController`, `string`; a closure also names where its
   * function is defined (`closure:next rxjs/…/OperatorSubscriber.js:12`), which says which
   * library builds the per-stream chain.
   */
  readonly name: string;
  readonly countPerStream: number;
  readonly bytesPerStream: number;
}

/** A script URL shortened to its package (or `dist/`) path. */
function shortScript(url: string): string {
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + 14);
  const dist = url.indexOf('/dist/');
  return dist !== -1 ? url.slice(dist + 1) : url;
}

/** Self size and count per group (strings, numbers and code grouped by type only). */
function groups(path: string): Map<string, { count: number; bytes: number }> {
  const heap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const { meta } = heap.snapshot;
  const width = meta.node_fields.length;
  const edgeWidth = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const field = {
    type: meta.node_fields.indexOf('type'),
    name: meta.node_fields.indexOf('name'),
    size: meta.node_fields.indexOf('self_size'),
    edges: meta.node_fields.indexOf('edge_count'),
  };
  const edge = {
    type: meta.edge_fields.indexOf('type'),
    name: meta.edge_fields.indexOf('name_or_index'),
    to: meta.edge_fields.indexOf('to_node'),
  };
  const nodeCount = heap.nodes.length / width;
  const firstEdge = new Uint32Array(nodeCount + 1);
  for (let i = 0, at = 0; i < nodeCount; i++) {
    firstEdge[i] = at;
    at += heap.nodes[i * width + field.edges] * edgeWidth;
  }
  const nameOf = (node: number): string => heap.strings[heap.nodes[node * width + field.name]];
  /** The node an edge named `name` of `node` points to (by name: internal/property edges). */
  const follow = (node: number, name: string): number | null => {
    const end = firstEdge[node] + heap.nodes[node * width + field.edges] * edgeWidth;
    for (let e = firstEdge[node]; e < end; e += edgeWidth) {
      const type = edgeTypes[heap.edges[e + edge.type]];
      if (type === 'element' || type === 'hidden') continue;
      if (heap.strings[heap.edges[e + edge.name]] === name) return heap.edges[e + edge.to] / width;
    }
    return null;
  };
  const lines = new Map<number, number>();
  const locationWidth = meta.location_fields.length;
  const object = meta.location_fields.indexOf('object_index');
  const line = meta.location_fields.indexOf('line');
  for (let i = 0; i < heap.locations.length; i += locationWidth) {
    lines.set(heap.locations[i + object] / width, heap.locations[i + line] + 1);
  }
  const byName = new Set(['object', 'native', 'hidden', 'array']);
  const result = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < nodeCount; i++) {
    const type = nodeTypes[heap.nodes[i * width + field.type]] ?? '?';
    let key = byName.has(type) ? `${type}:${nameOf(i)}` : type;
    if (type === 'closure') {
      const shared = follow(i, 'shared');
      const script = shared === null ? null : follow(shared, 'script_or_debug_info');
      const where = script === null ? '?' : shortScript(nameOf(script));
      key = `closure:${nameOf(i) || '(anonymous)'} ${where}:${lines.get(i) ?? '?'}`;
    }
    const entry = result.get(key) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += heap.nodes[i * width + field.size];
    result.set(key, entry);
  }
  return result;
}

/** What `after` holds more than `before`, per stream, biggest first. */
export function heapDiff(before: string, after: string, streams: number): HeapGroup[] {
  const a = groups(before);
  const b = groups(after);
  const diff: HeapGroup[] = [];
  for (const [name, { count, bytes }] of b) {
    const base = a.get(name) ?? { count: 0, bytes: 0 };
    diff.push({
      name,
      countPerStream: (count - base.count) / streams,
      bytesPerStream: (bytes - base.bytes) / streams,
    });
  }
  return diff.sort((x, y) => y.bytesPerStream - x.bytesPerStream);
}
