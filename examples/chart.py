import matplotlib.pyplot as plt

months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
sales = [120, 135, 160, 150, 190, 230]

fig, ax = plt.subplots(figsize=(6, 4))
ax.bar(months, sales, color="#3b82f6")
ax.set_title("Sales per month")
ax.set_xlabel("month")
ax.set_ylabel("units")
plt.show()
