import sys, glob, statistics
def load(f):
    rows = {}
    for line in open(f):
        v = list(map(int, line.split())); rows[v[0]] = v[1:]
    return rows
def pct(xs, p):
    xs = sorted(xs); i = max(0, min(len(xs)-1, int(round(p*len(xs)+0.5))-1)); return xs[i]
segs = [
 ('client: encode request', lambda c,s: c[1]-c[0]),
 ('client send -> server has the length prefix (incl. server wake-up)', lambda c,s: s[0]-c[1]),
 ('server: read body', lambda c,s: s[1]-s[0]),
 ('server: hand-off to worker', lambda c,s: s[2]-s[1]),
 ('server: decode', lambda c,s: s[3]-s[2]),
 ('server: engine call', lambda c,s: s[4]-s[3]),
 ('server: encode reply', lambda c,s: s[5]-s[4]),
 ('server: hand-off back to the connection', lambda c,s: s[7]-s[6]),
 ('server write done/started -> client has the reply', lambda c,s: c[4]-s[7]),
 ('client: decode + rest', lambda c,s: (c[7] or c[6])-c[4]),
 ('total (client-timed call)', lambda c,s: (c[7] or c[6])-c[0]),
 ('total minus engine call', lambda c,s: (c[7] or c[6])-c[0]-(s[4]-s[3])),
]
def collect(dirs, kind):
    out = {k: [] for k,_ in segs}
    for d in dirs:
        files = sorted(glob.glob(d + '/tr.*'))
        a, b = [load(f) for f in files]
        cli, srv = (a, b) if not any(r[8] for r in a.values()) else (b, a)
        n = min(len(cli), len(srv))
        searches = [i for i in range(n) if cli[i][7]]
        first = searches[0]
        lists = [i for i in range(n) if not cli[i][7] and 10 < i < first][100:]
        idx = lists if kind == 'list' else searches[100:2100]
        for k, f in segs:
            out[k] += [f(cli[i], srv[i]) / 1000 for i in idx]
    return out
variants = sys.argv[2:]
for kind in ['list', 'search']:
    print(f'\n{kind}: p50 / p90 / p99 (us)')
    data = {v: collect(sorted(glob.glob(f'{sys.argv[1]}/{v}-*')), kind) for v in variants}
    print('| stage | ' + ' | '.join(variants) + ' |')
    for k,_ in segs:
        row = []
        for v in variants:
            xs = data[v][k]
            row.append(f'{pct(xs,.5):.1f} / {pct(xs,.9):.1f} / {pct(xs,.99):.1f}')
        print(f'| {k} | ' + ' | '.join(row) + ' |')
