from flowdistill.cli import main

main()
