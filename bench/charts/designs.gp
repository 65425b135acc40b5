# The classic designs: new connections per second, and the server's CPU per connection (whole
# process tree, user + system). Input (bench/designs/run.sh writes it): label, conn/s, CPU
# µs/conn, tab-separated.
# Usage: gnuplot -e "data='designs.dat'; out='designs.png'" designs.gp
set terminal pngcairo size 1100,900 font "DejaVu Sans,11" noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.8
set grid ytics lc rgb "#dddddd"
set key off
set xtics rotate by -30 scale 0 font ",10"
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set lmargin 10
set rmargin 16
set bmargin 8
set multiplot layout 2,1
set title "New connections per second (one echo request per connection; higher is better)"
set ylabel "connections/s"
plot data using 2:xtic(1) lc rgb "#4c72b0", \
     '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.6 font ",9"
set title "Server CPU per connection, whole process tree (lower is better)"
set ylabel "µs per connection"
plot data using 3:xtic(1) lc rgb "#55a868", \
     '' using 0:3:(sprintf("%.1f", $3)) with labels offset 0,0.6 font ",9"
unset multiplot
