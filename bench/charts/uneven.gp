# The uneven load (bench/peers/run.sh): p99 latency per server, of all requests and of the
# light and the expensive ones apart, and the spread of connections over the workers. Input (run.sh
# writes it): label, p99, p99 light, p99 heavy (µs), spread max/min; NaN where unknown.
# Usage: gnuplot -e "data='uneven.dat'; out='uneven.png'; mix='10 % of requests fetch 262144 bytes'" uneven.gp
if (!exists("mix")) mix = "a share of large answers"
set terminal pngcairo size 1100,820 font "DejaVu Sans,11" noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top left
set xtics rotate by -25 scale 0
set yrange [0:*]
set offsets 0, 0, graph 0.18, 0
set lmargin 10
set rmargin 14
set bmargin 7
set multiplot layout 2,1
set title sprintf("p99 latency under the uneven load (%s; lower is better)", mix)
set ylabel "µs"
plot data using 2:xtic(1) title "all requests" lc rgb "#4c72b0", \
     '' using 3 title "light requests" lc rgb "#55a868", \
     '' using 4 title "expensive requests" lc rgb "#c44e52", \
     '' using ($0 - 0.3):2:(sprintf("%.0f", $2)) with labels offset 0,0.6 font ",9" notitle
set title "Spread of connections over the workers, max/min (1 is even; lower is better)"
set ylabel "max/min"
set yrange [1:*]
set key off
plot data using 5:xtic(1) lc rgb "#8172b3", \
     '' using 0:5:(sprintf("%.2f", $5)) with labels offset 0,0.6 font ",9"
unset multiplot
