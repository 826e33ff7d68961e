from services.selection.app import main

main()
