# How connections spread across workers: for each server, each worker's share of its
# connections (100% / workers is an even spread). Input: label, then one share in percent per
# worker, tab-separated, NaN-padded to ncol workers (run.sh writes it).
# Usage: gnuplot -e "data='w.dat'; out='w.png'; ncol=4; title='...'" workers.gp
if (!exists("title")) title = "Connections per worker"
set terminal pngcairo size 1100,520 font "DejaVu Sans,11" noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key outside right
set xtics rotate by -25 scale 0
set yrange [0:*]
set offsets 0, 0, graph 0.18, 0
set ylabel "share of the server's connections (%)"
set title title
plot for [k = 2:ncol + 1] data using k:xtic(1) title sprintf("worker %d", k - 2)
