import json,sys,glob,statistics as st,collections
# abtab.py PREFIX: per workload and mode, each binary's ops/s and CPU us/op over the rounds
pre=sys.argv[1]
d=collections.defaultdict(lambda: collections.defaultdict(list))
bins=[]
for f in sorted(glob.glob(pre+'-r*-*.json')):
    b=f.rsplit('-',1)[1][:-5]
    if b not in bins: bins.append(b)
    txt=json.load(open(f))
    reps=txt if isinstance(txt,list) else txt.get('reports',[txt])
    for r in reps:
        mode='enc' if 'encrypted' in r['settings'] else 'plain'
        for w in r['results']:
            d[(w['workload'],mode)][b].append((w['ops_per_sec'],(w.get('cpu_secs') or float('nan'))*1e6/w['ops']))
print('| workload | mode | '+' | '.join(f'{b} ops/s (rounds)' for b in bins)+' | '+' | '.join(f'{b} CPU us/op' for b in bins)+' | CPU ratio |')
print('|'+'---|'*(2+2*len(bins)+1))
for (w,m),v in d.items():
    ops=[' / '.join(f'{x[0]/1000:.1f}k' for x in v[b]) for b in bins]
    cpu=[st.median([x[1] for x in v[b]]) if v[b] else float('nan') for b in bins]
    ratio=cpu[0]/cpu[-1] if len(cpu)>1 else float('nan')
    print(f'| {w} | {m} | '+' | '.join(ops)+' | '+' | '.join(f'{c:.2f}' for c in cpu)+f' | {ratio:.2f} |')
