import json,sys,glob,collections
# sum.py prefix: per round, per binary: enc/plain ratios of ops/s and of CPU per op
pre=sys.argv[1]
files=sorted(glob.glob(pre+'-r*-*.json'))
for f in files:
    txt=open(f).read()
    # a --mode both json may hold two reports
    try:
        d=json.loads(txt)
        reps=d if isinstance(d,list) else d.get('reports',[d])
    except Exception as e:
        print(f,e); continue
    by={}
    for r in reps:
        name='enc' if 'encrypted' in r['settings'] else 'plain'
        by[name]={w['workload']:w for w in r['results']}
    print('##',f.split('/')[-1])
    for w in by.get('enc',{}):
        e=by['enc'][w]; p=by['plain'].get(w)
        if not p: continue
        ce=e.get('cpu_secs'); cp=p.get('cpu_secs')
        cpu_e=ce*1e6/e['ops'] if ce else float('nan'); cpu_p=cp*1e6/p['ops'] if cp else float('nan')
        print(f"{w:12s} ops/s enc {e['ops_per_sec']:10.0f} plain {p['ops_per_sec']:10.0f} ratio {e['ops_per_sec']/p['ops_per_sec']:.2f} | cpu us/op enc {cpu_e:.3f} plain {cpu_p:.3f} ratio {cpu_p/cpu_e:.2f} | p50 {e['latency']['p50_us']:.2f}/{p['latency']['p50_us']:.2f}")
