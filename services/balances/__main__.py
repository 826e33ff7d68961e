from services.balances.app import main

main()
