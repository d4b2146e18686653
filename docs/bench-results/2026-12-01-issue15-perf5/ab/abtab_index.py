import re,sys,statistics as st,collections
# abtab_index.py LOG: median (and all) CPU us/put per binary and index count
d=collections.defaultdict(lambda: collections.defaultdict(list)); bins=[]
for line in open(sys.argv[1]):
    m=re.match(r'r(\d+) (\S+) fillrandom \d+ items, (\d) index\(es\): (\d+) ops/s .* ([\d.]+) us CPU/put',line)
    if not m: continue
    b=m.group(2)
    if b not in bins: bins.append(b)
    d[int(m.group(3))][b].append(float(m.group(5)))
print('| indexes | '+' | '.join(f'{b} CPU us/put (rounds)' for b in bins)+' | '+' | '.join(f'{b} median' for b in bins)+' | new/base |')
print('|'+'---|'*(2+2*len(bins)))
for k in sorted(d):
    v=d[k]; med=[st.median(v[b]) for b in bins]
    print(f'| {k} | '+' | '.join(' / '.join(f'{x:.2f}' for x in v[b]) for b in bins)+' | '+' | '.join(f'{x:.2f}' for x in med)+f' | {med[-1]/med[0]:.2f} |')
